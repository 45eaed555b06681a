// The several-detector part of the wire codec (stream/codec.hpp; docs/protocol.md
// "Channels"): `channels` and `register_channel` on series_start and frame,
// one data part per channel, and `channel` on average messages.
#include "stream/codec.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace livealign {
namespace {

using Json = nlohmann::json;

std::string Msgpack(const Json& j) {
  const std::vector<std::uint8_t> bytes = Json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

std::string ErrorCode(const std::vector<std::string>& parts) {
  std::vector<std::string_view> views(parts.begin(), parts.end());
  try {
    DecodeInbound(views, 1 << 20);
  } catch (const DecodeError& e) {
    return e.code();
  }
  return "";
}

Json StartJson() {
  return Json{{"htype", "series_start"}, {"series", "s"}, {"shape", {2, 3}}, {"dtype", "uint8"}};
}

Json FrameJson(const Json& channels) {
  Json j{{"htype", "frame"}, {"series", "s"}, {"frame", 0}, {"shape", {2, 3}}, {"dtype", "uint8"}};
  if (!channels.is_null()) j["channels"] = channels;
  return j;
}

TEST_CASE("series_start and frame round-trip their channels", "[stream][codec][channels]") {
  SeriesStart start;
  start.series = SeriesId::Str("two");
  start.shape = Shape{2, 3};
  start.dtype = PixelType::kUint16;
  start.channels = {"HAADF", "ABF"};
  start.register_channel = "ABF";
  const auto got = std::get<SeriesStart>(DecodeInbound({EncodeSeriesStartHeader(start)}, 100));
  CHECK(got.channels == start.channels);
  CHECK(got.register_channel == "ABF");
  CHECK(RegisterChannelIndex(got) == 1);

  FrameMessage frame;
  frame.series = start.series;
  frame.index = 3;
  frame.shape = start.shape;
  frame.dtype = start.dtype;
  frame.channels = start.channels;
  const std::string haadf(12, '\x01'), abf(12, '\x02');
  const auto f = std::get<FrameMessage>(DecodeInbound({EncodeFrameHeader(frame), haadf, abf}, 100));
  CHECK(f.channels == frame.channels);
  CHECK(f.payload == haadf.data());
  CHECK(f.payload_bytes == 12);
}

TEST_CASE("without channels the messages are byte-identical to one channel", "[stream][codec][channels]") {
  SeriesStart start;
  start.series = SeriesId::Int(1);
  start.shape = Shape{2, 3};
  const Json j = MsgpackToJson(EncodeSeriesStartHeader(start));
  CHECK_FALSE(j.contains("channels"));
  CHECK_FALSE(j.contains("register_channel"));
  const auto got = std::get<SeriesStart>(DecodeInbound({EncodeSeriesStartHeader(start)}, 100));
  CHECK(got.channels.empty());
  CHECK(RegisterChannelIndex(got) == 0);

  AverageImage image;
  image.full = Frame(Shape{2, 3});
  image.valid = AverageImage::Rect{0, 2, 0, 3};
  const OutMessage unnamed = EncodeAverage(SeriesId::Int(1), 2, image);
  const Json ju = MsgpackToJson(unnamed.header);
  CHECK_FALSE(ju.contains("channel"));
  CHECK(ju.size() == 8);
  const OutMessage named = EncodeAverage(SeriesId::Int(1), 2, image, "ABF", {"HAADF", "ABF"});
  const Json jn = MsgpackToJson(named.header);
  CHECK(jn["channel"] == "ABF");
  CHECK(jn["channels"] == Json({"HAADF", "ABF"}));
  CHECK(jn["shape"] == ju["shape"]);
  CHECK(named.data == unnamed.data);
}

TEST_CASE("bad channel lists and part counts are refused with stable codes", "[stream][codec][channels]") {
  const std::string px(6, '\0');
  auto start_with = [](const Json& channels, const Json& register_channel = nullptr) {
    Json j = StartJson();
    j["channels"] = channels;
    if (!register_channel.is_null()) j["register_channel"] = register_channel;
    return Msgpack(j);
  };
  CHECK(ErrorCode({start_with({"HAADF", "BF"})}) == "");
  CHECK(ErrorCode({start_with({"HAADF", "BF"}, "BF")}) == "");
  CHECK(ErrorCode({start_with(nullptr)}) == "");  // nil = absent
  CHECK(ErrorCode({start_with({"HAADF", "HAADF"})}) == "bad_channels");
  CHECK(ErrorCode({start_with(Json::array())}) == "bad_channels");
  CHECK(ErrorCode({start_with("HAADF")}) == "bad_channels");
  CHECK(ErrorCode({start_with({"HAADF", 3})}) == "bad_channels");
  CHECK(ErrorCode({start_with({""})}) == "bad_channels");
  CHECK(ErrorCode({start_with({"a/b"})}) == "bad_channels");
  CHECK(ErrorCode({start_with({".."})}) == "bad_channels");
  CHECK(ErrorCode({start_with({std::string(kMaxChannelNameLength + 1, 'x')})}) == "bad_channels");
  Json many = Json::array();
  for (std::size_t i = 0; i <= kMaxChannels; ++i) many.push_back("c" + std::to_string(i));
  CHECK(ErrorCode({start_with(many)}) == "bad_channels");
  CHECK(ErrorCode({start_with({"HAADF", "BF"}, "DF")}) == "unknown_channel");
  CHECK(ErrorCode({start_with({"HAADF", "BF"}, 1)}) == "bad_type");
  Json lone = StartJson();
  lone["register_channel"] = "HAADF";
  CHECK(ErrorCode({Msgpack(lone)}) == "unknown_channel");

  const Json two = {"HAADF", "BF"};
  CHECK(ErrorCode({Msgpack(FrameJson(two)), px, px}) == "");
  CHECK(ErrorCode({Msgpack(FrameJson(two)), px}) == "bad_parts");
  CHECK(ErrorCode({Msgpack(FrameJson(two)), px, px, px}) == "bad_parts");
  CHECK(ErrorCode({Msgpack(FrameJson(nullptr)), px, px}) == "bad_parts");
  CHECK(ErrorCode({Msgpack(FrameJson(two)), px, std::string(5, '\0')}) == "bad_payload_size");
  CHECK(ErrorCode({Msgpack(FrameJson({"HAADF", "HAADF"})), px, px}) == "bad_channels");
}

}  // namespace
}  // namespace livealign
