// The control request decoder (stream/codec.hpp DecodeControl): any bytes
// either decode to a known command or throw DecodeError.
#include <cstdint>

#include "stream/codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace livealign;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const ControlRequest request = DecodeControl(bytes);
    if (request.cmd != "status" && request.cmd != "snapshot" && request.cmd != "save" &&
        request.cmd != "reset" && request.cmd != "shutdown" && request.cmd != "matrices_window") {
      __builtin_trap();
    }
    // Any int32 decodes; whether the window fits is decided against k later.
    if (request.cmd != "matrices_window" &&
        (request.window.i0 != 0 || request.window.j0 != 0 || request.window.n != 0)) {
      __builtin_trap();
    }
    if (DecodeControlRequest(bytes) != request.cmd) __builtin_trap();
  } catch (const DecodeError&) {
  }
  return 0;
}
