// The .npy reader (adapters/npy_reader.hpp) on arbitrary file contents: it
// returns frames whose sizes match the header or throws FileError.
#include <cstdint>

#include "adapters/file_error.hpp"
#include "adapters/npy_reader.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace livealign;
  const std::string path = fuzz::WriteScratch(data, size, ".npy");
  try {
    const NpyHeader header = ReadNpyHeader(path);
    if (header.data_offset + header.data_bytes != size) __builtin_trap();
    const FrameStack stack = ReadNpy(path);
    if (static_cast<int>(stack.frames.size()) != header.frame_count()) __builtin_trap();
  } catch (const FileError&) {
  }
  return 0;
}
