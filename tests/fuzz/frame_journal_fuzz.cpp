// libFuzzer target for the frame-journal reader (adapters/frame_journal.hpp):
// any bytes are scanned without crashing, every frame the scan reports reads
// back by its offset, and the scan's own bookkeeping holds.
//
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//     tests/fuzz/frame_journal_fuzz.cpp adapters/frame_journal.cpp core/frame.cpp \
//     -o frame_journal_fuzz && ./frame_journal_fuzz tests/fuzz/corpus/frame_journal
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "adapters/file_error.hpp"
#include "adapters/frame_journal.hpp"

namespace {

// The offsets the scan reports are checked through the file reader too, on
// a copy of the input in a temporary file (one per process).
const std::string& ScratchPath() {
  static const std::string path = [] {
    char name[] = "/tmp/frame_journal_fuzz_XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd >= 0) ::close(fd);
    return std::string(name);
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace livealign;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const JournalScan scan = ScanFrameJournalBytes(bytes);
  if (scan.file_bytes != size || scan.valid_bytes > size) std::abort();
  if (scan.DroppedBytes() > size * 2 + 1) std::abort();  // a stretch is counted once or twice at most
  (void)scan.Summary();
  if (scan.frames.empty()) return 0;
  std::FILE* file = std::fopen(ScratchPath().c_str(), "wb");
  if (file == nullptr) return 0;
  std::fwrite(data, 1, size, file);
  std::fclose(file);
  for (const JournalFrameEntry& entry : scan.frames) {
    try {
      const JournalFrame frame = ReadJournalFrameAt(ScratchPath(), entry.offset);
      if (frame.entry.index != entry.index || frame.entry.shape != entry.shape ||
          frame.pixels.size() != static_cast<std::size_t>(entry.shape.Pixels())) {
        std::abort();  // the two readers disagree
      }
    } catch (const FileError&) {
      std::abort();  // the scan reported a record the offset reader refuses
    }
  }
  try {
    (void)FrameJournalFinished(ScratchPath());
  } catch (const FileError&) {
  }
  return 0;
}
