#pragma once
// Write-then-rename: a crash or an exception never leaves a half-written file
// at the destination. Readers see either the old complete file or the new
// complete file (rename(2) is atomic within one filesystem).
//
// Usage:
//   AtomicWrite("out/average.tif", [&](const std::string& tmp_path) {
//     WriteSomething(tmp_path);  // must create tmp_path
//   });
//
// Thread-safe: each call uses its own temporary name (pid + counter), so
// concurrent calls, even for the same destination, never share a temporary;
// the last rename wins.

#include <cstddef>
#include <functional>
#include <string>

namespace livealign {

struct AtomicWriteOptions {
  // fsync the temporary file before the rename and the directory after it, so
  // the new content survives a power cut, not just a process crash. Costs a
  // disk flush per write (milliseconds to seconds on slow disks), so it is off
  // for frequently replaced previews.
  bool fsync = false;
};

// Calls writer(tmp_path) with a fresh temporary path in the same directory as
// `path` (".<name>.tmp-<pid>-<n>"), then renames it onto `path`.
// If the writer throws, the temporary is removed, `path` is left untouched and
// the exception propagates unchanged. Throws FileError when the writer returns
// without creating tmp_path, or when fsync or rename fails (the temporary is
// removed then too).
void AtomicWrite(const std::string& path,
                 const std::function<void(const std::string& tmp_path)>& writer,
                 const AtomicWriteOptions& options = {});

// Writes `size` bytes at `data` to `path` through AtomicWrite. Throws
// FileError when the file cannot be created or written (disk full, ...).
void AtomicWriteBytes(const std::string& path, const void* data, std::size_t size,
                      const AtomicWriteOptions& options = {});

}  // namespace livealign
