#include "adapters/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "adapters/file_error.hpp"

namespace livealign {
namespace {

namespace fs = std::filesystem;

std::string TempPathFor(const fs::path& path) {
  static std::atomic<unsigned long> counter{0};
  const std::string name = "." + path.filename().string() + ".tmp-" +
                           std::to_string(::getpid()) + "-" +
                           std::to_string(counter.fetch_add(1));
  return (path.parent_path() / name).string();
}

// fsyncs a file or directory; returns errno, 0 on success.
int FsyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd);
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

void RemoveQuietly(const std::string& path) {
  std::error_code ignored;
  fs::remove(path, ignored);
}

}  // namespace

void AtomicWrite(const std::string& path,
                 const std::function<void(const std::string& tmp_path)>& writer,
                 const AtomicWriteOptions& options) {
  const fs::path target(path);
  if (target.filename().empty()) throw FileError(path, "not a file name");
  const std::string tmp_path = TempPathFor(target);
  try {
    writer(tmp_path);
  } catch (...) {
    RemoveQuietly(tmp_path);
    throw;
  }
  std::error_code ec;
  if (!fs::is_regular_file(tmp_path, ec)) {
    RemoveQuietly(tmp_path);
    throw FileError(path, "write failed: the writer did not create " + tmp_path);
  }
  if (options.fsync) {
    if (const int err = FsyncPath(tmp_path, false); err != 0) {
      RemoveQuietly(tmp_path);
      throw FileError(path, std::string("fsync failed: ") + std::strerror(err));
    }
  }
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) {
    const int err = errno;
    RemoveQuietly(tmp_path);
    throw FileError(path, std::string("cannot replace file: ") + std::strerror(err));
  }
  if (options.fsync) {
    const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    // The data is already safe in the renamed file; a failed directory sync
    // only weakens durability of the name, so it is not an error.
    (void)FsyncPath(dir.string(), true);
  }
}

void AtomicWriteBytes(const std::string& path, const void* data, std::size_t size,
                      const AtomicWriteOptions& options) {
  AtomicWrite(
      path,
      [&](const std::string& tmp_path) {
        std::FILE* file = std::fopen(tmp_path.c_str(), "wb");
        if (!file) throw FileError(path, std::string("cannot create: ") + std::strerror(errno));
        const bool wrote = size == 0 || std::fwrite(data, 1, size, file) == size;
        const int write_errno = errno;
        const bool closed = std::fclose(file) == 0;
        if (!wrote || !closed) {
          throw FileError(path, std::string("write failed: ") +
                                    std::strerror(wrote ? errno : write_errno));
        }
      },
      options);
}

}  // namespace livealign
