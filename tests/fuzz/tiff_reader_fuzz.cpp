// The TIFF reader (adapters/tiff_io.hpp, libtiff underneath) on arbitrary file
// contents: it returns frames of one shape or throws FileError.
#include <cstdint>

#include "adapters/file_error.hpp"
#include "adapters/tiff_io.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace livealign;
  const std::string path = fuzz::WriteScratch(data, size, ".tif");
  try {
    const FrameStack stack = ReadTiff(path);
    for (const auto& frame : stack.frames) {
      if (frame.shape() != stack.frames.front().shape()) __builtin_trap();
    }
  } catch (const FileError&) {
  }
  return 0;
}
