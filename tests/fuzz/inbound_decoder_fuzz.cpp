// The inbound message decoder (stream/codec.hpp DecodeInbound) on arbitrary
// multipart messages (fuzz_input.hpp layout). It must either return a message
// whose payload lies inside the given parts or throw DecodeError.
#include <cstdint>
#include <cstring>

#include "stream/codec.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace livealign;
  const std::vector<std::string_view> parts = fuzz::SplitParts(data, size);
  try {
    const InboundMessage message = DecodeInbound(parts, std::int64_t{1} << 16);
    if (const auto* frame = std::get_if<FrameMessage>(&message)) {
      // Every payload byte is read, so ASan sees a payload outside the parts.
      const auto* bytes = static_cast<const unsigned char*>(frame->payload);
      unsigned sum = 0;
      for (std::size_t i = 0; i < frame->payload_bytes; ++i) sum += bytes[i];
      if (frame->payload_bytes != static_cast<std::size_t>(frame->shape.Pixels()) *
                                      PixelTypeSize(frame->dtype)) {
        __builtin_trap();
      }
      (void)sum;
      (void)EncodeFrameHeader(*frame);
    } else if (const auto* start = std::get_if<SeriesStart>(&message)) {
      const std::string again = EncodeSeriesStartHeader(*start);
      const InboundMessage decoded = DecodeInbound({again}, std::int64_t{1} << 16);
      if (!(std::get<SeriesStart>(decoded).series == start->series)) __builtin_trap();
    } else {
      (void)EncodeSeriesEndHeader(std::get<SeriesEnd>(message));
    }
  } catch (const DecodeError&) {
  }
  if (!parts.empty()) {
    try {
      (void)MsgpackToJson(parts[0]);
    } catch (const DecodeError&) {
    }
  }
  return 0;
}
