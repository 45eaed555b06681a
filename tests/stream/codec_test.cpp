#include "stream/codec.hpp"

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include <cmath>
#include <cstring>
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

Json FrameJson() {
  return Json{{"htype", "frame"}, {"series", 3}, {"frame", 7},
              {"shape", {2, 3}},  {"dtype", "uint16"}};
}

// The DecodeError code thrown by decoding these parts, or "" when none.
std::string ErrorCode(const std::vector<std::string>& parts, std::int64_t max_pixels = 1 << 20) {
  std::vector<std::string_view> views(parts.begin(), parts.end());
  try {
    DecodeInbound(views, max_pixels);
  } catch (const DecodeError& e) {
    CHECK(std::string(e.what()).size() > 0);
    return e.code();
  }
  return "";
}

TEST_CASE("codec round-trips the three inbound messages", "[stream][codec]") {
  SECTION("series_start with every optional key") {
    SeriesStart start;
    start.series = SeriesId::Str("run/7");
    start.shape = Shape{64, 32};
    start.dtype = PixelType::kInt16;
    start.pixel_size_x_A = 0.5;
    start.pixel_size_y_A = 0.25;
    start.frame_time_s = 0.1;
    start.expected_frames = 20;
    start.meta = Json{{"microscope", "Nion"}, {"kV", 60}};
    const std::string header = EncodeSeriesStartHeader(start);
    const InboundMessage m = DecodeInbound({header}, 1 << 20);
    REQUIRE(std::holds_alternative<SeriesStart>(m));
    const auto& got = std::get<SeriesStart>(m);
    CHECK(got.series == start.series);
    CHECK(got.shape == start.shape);
    CHECK(got.dtype == PixelType::kInt16);
    CHECK(*got.pixel_size_x_A == 0.5);
    CHECK(*got.pixel_size_y_A == 0.25);
    CHECK(*got.frame_time_s == 0.1);
    CHECK(*got.expected_frames == 20);
    CHECK(got.meta == start.meta);
  }
  SECTION("series_start with a scalar pixel size and no optionals") {
    const std::string header = Msgpack({{"htype", "series_start"}, {"series", 1},
                                        {"shape", {4, 4}}, {"dtype", "float64"},
                                        {"pixel_size_A", 2.0}});
    const auto got = std::get<SeriesStart>(DecodeInbound({header}, 100));
    CHECK(got.series == SeriesId::Int(1));
    CHECK(*got.pixel_size_x_A == 2.0);
    CHECK(*got.pixel_size_y_A == 2.0);
    CHECK_FALSE(got.frame_time_s);
    CHECK(got.meta.is_null());
  }
  SECTION("frame with payload view") {
    FrameMessage frame;
    frame.series = SeriesId::Int(3);
    frame.index = 7;
    frame.shape = Shape{2, 3};
    frame.dtype = PixelType::kUint16;
    frame.timestamp_s = 12.5;
    const std::string header = EncodeFrameHeader(frame);
    const std::string payload(12, '\x01');
    const auto got = std::get<FrameMessage>(DecodeInbound({header, payload}, 100));
    CHECK(got.series == frame.series);
    CHECK(got.index == 7);
    CHECK(got.shape == frame.shape);
    CHECK(got.dtype == PixelType::kUint16);
    CHECK(*got.timestamp_s == 12.5);
    CHECK_FALSE(got.scan_offset_px);
    CHECK(got.payload == payload.data());
    frame.scan_offset_px = Shift{1.5, -0.25};
    const auto moved = std::get<FrameMessage>(DecodeInbound({EncodeFrameHeader(frame), payload}, 100));
    CHECK(*moved.scan_offset_px == Shift{1.5, -0.25});
    CHECK(got.payload_bytes == 12);
  }
  SECTION("series_end") {
    SeriesEnd end;
    end.series = SeriesId::Str("a");
    end.frames = 9;
    const auto got = std::get<SeriesEnd>(DecodeInbound({EncodeSeriesEndHeader(end)}, 100));
    CHECK(got.series == end.series);
    CHECK(*got.frames == 9);
  }
}

TEST_CASE("codec refuses every malformed inbound message with a stable code", "[stream][codec]") {
  const std::string payload(12, '\0');
  auto with = [](Json j, const std::string& key, Json value) {
    j[key] = std::move(value);
    return j;
  };
  auto without = [](Json j, const std::string& key) {
    j.erase(key);
    return j;
  };
  CHECK(ErrorCode({Msgpack(FrameJson()), payload}) == "");
  CHECK(ErrorCode({}) == "bad_parts");
  CHECK(ErrorCode({Msgpack(FrameJson())}) == "bad_parts");
  CHECK(ErrorCode({Msgpack({{"htype", "series_end"}, {"series", 1}}), payload}) == "bad_parts");
  CHECK(ErrorCode({"this is not msgpack \xc1", payload}) == "bad_msgpack");
  CHECK(ErrorCode({"", payload}) == "bad_msgpack");
  CHECK(ErrorCode({Msgpack(FrameJson()) + "x", payload}) == "bad_msgpack");
  CHECK(ErrorCode({Msgpack(Json::array({1, 2})), payload}) == "bad_msgpack");
  CHECK(ErrorCode({"\xdd\xff\xff\xff\xff", payload}) == "bad_msgpack");  // array32 of 4e9
  CHECK(ErrorCode({Msgpack(without(FrameJson(), "htype")), payload}) == "missing_key");
  CHECK(ErrorCode({Msgpack(without(FrameJson(), "series")), payload}) == "missing_key");
  CHECK(ErrorCode({Msgpack(without(FrameJson(), "frame")), payload}) == "missing_key");
  CHECK(ErrorCode({Msgpack(without(FrameJson(), "shape")), payload}) == "missing_key");
  CHECK(ErrorCode({Msgpack(without(FrameJson(), "dtype")), payload}) == "missing_key");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "htype", 5)), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "series", 1.5)), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "frame", "7")), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "frame", -1)), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "shape", {2, 3, 1})), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "shape", "2x3")), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "dtype", 16)), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "timestamp_s", "now")), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "scan_offset_px", {1.0})), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "scan_offset_px", "x")), payload}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "htype", "picture")), payload}) == "unknown_htype");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "dtype", "complex64")), payload}) ==
        "unknown_dtype");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "shape", {0, 3})), payload}) == "bad_shape");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "shape", {-2, 3})), payload}) == "bad_shape");
  CHECK(ErrorCode({Msgpack(FrameJson()), payload}, /*max_pixels=*/5) == "too_many_pixels");
  CHECK(ErrorCode({Msgpack(with(FrameJson(), "shape", {1 << 30, 1 << 30})), payload}) ==
        "too_many_pixels");
  CHECK(ErrorCode({Msgpack(FrameJson()), std::string(11, '\0')}) == "bad_payload_size");
  CHECK(ErrorCode({Msgpack(FrameJson()), std::string(24, '\0')}) == "bad_payload_size");
  const Json start{{"htype", "series_start"}, {"series", "s"}, {"shape", {2, 3}},
                   {"dtype", "uint8"}};
  CHECK(ErrorCode({Msgpack(start)}) == "");
  CHECK(ErrorCode({Msgpack(with(start, "pixel_size_A", "big"))}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(start, "pixel_size_A", -1.0))}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(start, "meta", 3))}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(start, "expected_frames", 2.5))}) == "bad_type");
  CHECK(ErrorCode({Msgpack(with(start, "shape", {4096, 4096}))}, 1 << 20) == "too_many_pixels");
  CHECK(ErrorCode({Msgpack({{"htype", "series_end"}})}) == "missing_key");
}

TEST_CASE("series ids become safe directory names", "[stream][codec]") {
  CHECK(SeriesId::Int(42).DirectoryName() == "42");
  CHECK(SeriesId::Int(-3).DirectoryName() == "-3");
  CHECK(SeriesId::Str("run_01.a").DirectoryName() == "run_01.a");
  CHECK(SeriesId::Str("../../etc").DirectoryName() == "_.._.._etc");
  CHECK(SeriesId::Str("..").DirectoryName() == "_..");
  CHECK(SeriesId::Str("").DirectoryName() == "_");
  CHECK(SeriesId::Str("a b/c\\d").DirectoryName() == "a_b_c_d");
  CHECK(SeriesId::Str(std::string(300, 'x')).DirectoryName().size() == 100);
  CHECK(SeriesId::Int(5).ToString() == "5");
}

TEST_CASE("wire strings that are not UTF-8 decode as UTF-8 with U+FFFD", "[stream][codec]") {
  // Found by tests/fuzz/inbound_decoder_fuzz.cpp: a map key that is not a
  // string was turned into its JSON text, whose encoder threw a
  // nlohmann::json type_error (not a DecodeError) on a bad byte inside it,
  // which ended the receiver thread.
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  auto str = [&](const std::string& s) {
    p.pack_str(static_cast<std::uint32_t>(s.size()));
    p.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
  };
  p.pack_map(5);
  str("htype");
  str("series_start");
  str("series");
  str("run\xff" "1");
  str("shape");
  p.pack_array(2);
  p.pack(4);
  p.pack(4);
  str("dtype");
  str("uint16");
  str("meta");
  p.pack_map(3);
  p.pack_array(1);  // a non-string key holding a bad string
  str("\x90\x90");
  p.pack(1);
  str("ok\xc3");  // truncated sequence in a key
  str("\xed\xa0\x80 surrogate, \xc0\x80 overlong, \xe2\x82\xac euro");
  str("k");
  str("\xf4\x90\x80\x80");  // beyond U+10FFFF
  const std::string header(buffer.data(), buffer.size());

  const InboundMessage decoded = DecodeInbound({header}, 1 << 20);
  const SeriesStart& start = std::get<SeriesStart>(decoded);
  CHECK(start.series.ToString() == "run\xEF\xBF\xBD" "1");
  const std::string meta = start.meta.dump();  // threw before
  CHECK(meta.find("\\ufffd") == std::string::npos);  // replaced, not escaped
  CHECK(start.meta.at("[\"\xEF\xBF\xBD\xEF\xBF\xBD\"]") == 1);
  CHECK(start.meta.at("ok\xEF\xBF\xBD") ==
        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD surrogate, \xEF\xBF\xBD\xEF\xBF\xBD overlong, "
        "\xe2\x82\xac euro");
  CHECK(start.meta.at("k") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK_NOTHROW(MsgpackToJson(header).dump());
}

TEST_CASE("map keys nested in map keys do not blow up the JSON of meta", "[stream][codec]") {
  // Found by tests/fuzz/inbound_decoder_fuzz.cpp (a timeout): each map used
  // as the key of a map had its JSON text escaped again, doubling per level,
  // so a 100-byte series_start kept the receiver busy for seconds.
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  p.pack_map(5);
  p.pack(std::string("htype"));
  p.pack(std::string("series_start"));
  p.pack(std::string("series"));
  p.pack(1);
  p.pack(std::string("shape"));
  p.pack_array(2);
  p.pack(4);
  p.pack(4);
  p.pack(std::string("dtype"));
  p.pack(std::string("uint16"));
  p.pack(std::string("meta"));
  const int depth = 28;  // within the decoder's nesting limit of 32
  p.pack_map(1);
  for (int level = 0; level < depth; ++level) p.pack_map(1);  // each the key of the one before
  p.pack(std::string("\"quoted\""));
  for (int level = 0; level <= depth; ++level) p.pack(level);
  const std::string header(buffer.data(), buffer.size());

  const SeriesStart start = std::get<SeriesStart>(DecodeInbound({header}, 1 << 20));
  REQUIRE(start.meta.size() == 1);
  const std::string key = start.meta.begin().key();
  CHECK(key == "{\"<key>\":" + std::to_string(depth - 1) + "}");
  CHECK(start.meta.dump().size() < 100);
}

TEST_CASE("a control request may carry a token", "[stream][codec]") {
  const ControlRequest with = DecodeControl(Msgpack({{"cmd", "reset"}, {"token", "s3cret"}}));
  CHECK(with.cmd == "reset");
  CHECK(with.token == "s3cret");
  CHECK(DecodeControl(Msgpack({{"cmd", "save"}})).token.empty());
  try {
    DecodeControl(Msgpack({{"cmd", "reset"}, {"token", 7}}));
    FAIL("a token that is not a string must be refused");
  } catch (const DecodeError& e) {
    CHECK(e.code() == "bad_type");
  }
}

TEST_CASE("control requests decode and replies encode", "[stream][codec]") {
  CHECK(DecodeControlRequest(Msgpack({{"cmd", "status"}})) == "status");
  CHECK(DecodeControlRequest(Msgpack({{"cmd", "shutdown"}})) == "shutdown");
  auto code = [](const std::string& bytes) {
    try {
      DecodeControlRequest(bytes);
    } catch (const DecodeError& e) {
      return e.code();
    }
    return std::string();
  };
  CHECK(code(Msgpack({{"cmd", "dance"}})) == "unknown_cmd");
  CHECK(code(Msgpack({{"command", "status"}})) == "missing_key");
  CHECK(code(Msgpack({{"cmd", 1}})) == "bad_type");
  CHECK(code("garbage\xc1") == "bad_msgpack");

  const Json reply = MsgpackToJson(EncodeReply(true, "", Json{{"frames", 3}}));
  CHECK(reply["ok"] == true);
  CHECK(reply["error"] == "");
  CHECK(reply["frames"] == 3);
  CHECK(reply["protocol"] == kProtocolVersion);

  const OutMessage drift = EncodeDrift(DriftUpdate{});
  const Json snapshot = MsgpackToJson(EncodeSnapshotReply(drift.header, "", ""));
  CHECK(snapshot["ok"] == true);
  CHECK(snapshot["drift"]["topic"] == "drift");
  CHECK(snapshot["quality"].is_null());
  CHECK(snapshot["average"].is_null());
}

TEST_CASE("outbound messages carry the documented keys", "[stream][codec]") {
  SECTION("drift, with nil for unknowns") {
    DriftUpdate d;
    d.series = SeriesId::Str("s1");
    d.frame = 4;
    d.frame_indices = {0, 1, 4};
    const double x[] = {0, 1.5, -2}, y[] = {0, 0.5, 3}, residual[] = {0, 0.1, 0.2},
                 timestamp[] = {0, 0.1, std::nan("")};
    for (int i = 0; i < 3; ++i) {
      FrameState f;
      f.index = i;
      f.shift = Shift{x[i], y[i]};
      f.residual_px = residual[i];
      f.flagged = i == 2;
      f.timestamp_s = timestamp[i];
      d.frames.push_back(f);
    }
    d.latency_ms = 12.5;
    d.drift_rate_A_per_s = Shift{1, -1};
    const OutMessage m = EncodeDrift(d);
    CHECK(m.topic == "drift");
    CHECK(m.data.empty());
    const Json j = MsgpackToJson(m.header);
    CHECK(j["series"] == "s1");
    CHECK(j["n_frames"] == 3);
    CHECK(j["frame"] == 4);
    CHECK(j["frame_indices"] == Json({0, 1, 4}));
    CHECK(j["shift_x_px"][1] == 1.5);
    CHECK(j["shift_y_px"][2] == 3.0);
    CHECK(j["flagged"][2] == true);
    CHECK(j["timestamp_s"][2].is_null());
    CHECK(j["latency_ms"] == 12.5);
    CHECK(j["drift_rate_A_per_s"] == Json({1.0, -1.0}));
    CHECK(j["drift_rate_px_per_s"].is_null());
    CHECK(j["predicted_shift_px"].is_null());  // no prediction yet
    CHECK(j["predicted_for_frame"].is_null());
    CHECK(j["prediction_sigma_px"].is_null());
    d.prediction.valid = true;
    d.prediction.for_frame = 5;
    d.prediction.shift_px = Shift{-2.5, 3.25};
    d.prediction.sigma_px = 0.125;
    const Json p = MsgpackToJson(EncodeDrift(d).header);
    CHECK(p["predicted_shift_px"] == Json({-2.5, 3.25}));
    CHECK(p["predicted_for_frame"] == 5);
    CHECK(p["prediction_sigma_px"] == 0.125);
  }
  SECTION("average with its data part") {
    AverageImage image;
    image.full = Frame(Shape{2, 3});
    image.full.at(1, 2) = 7.0f;
    image.valid = AverageImage::Rect{0, 2, 1, 3};
    image.num_included = 4;
    const OutMessage m = EncodeAverage(SeriesId::Int(2), 5, image);
    CHECK(m.topic == "average");
    REQUIRE(m.data.size() == 6 * sizeof(float));
    float last = 0;
    std::memcpy(&last, m.data.data() + 5 * sizeof(float), sizeof(float));
    CHECK(last == 7.0f);
    const Json j = MsgpackToJson(m.header);
    CHECK(j["shape"] == Json({2, 3}));
    CHECK(j["dtype"] == "float32");
    CHECK(j["valid"] == Json({0, 2, 1, 3}));
    CHECK(j["n_frames"] == 5);
  }
  SECTION("mosaic with its counts and rectangles") {
    AverageImage image;
    image.mosaic_extent = AverageImage::Rect{-3, 2, 1, 5};
    image.mosaic = Frame(Shape{5, 4});
    image.mosaic_counts = Frame(Shape{5, 4});
    for (int r = 0; r < 5; ++r) {
      for (int c = 0; c < 4; ++c) {
        image.mosaic.at(r, c) = static_cast<float>(r);
        image.mosaic_counts.at(r, c) = static_cast<float>(c + 1);
      }
    }
    image.best_covered = AverageImage::Rect{-1, 1, 2, 4};
    const MosaicPreview preview = MakeMosaicPreview(image, Shape{2, 4}, 3);  // bin 2: 3 x 2
    const OutMessage m = EncodeMosaic(SeriesId::Int(2), 5, 4, preview);
    CHECK(m.topic == "mosaic");
    REQUIRE(m.data.size() == 6 * sizeof(float));
    std::vector<float> pixels(6);
    std::memcpy(pixels.data(), m.data.data(), m.data.size());
    CHECK(pixels[0] == 0.5f);  // rows 0 and 1
    CHECK(pixels[5] == 4.0f);  // row 4 alone
    const Json j = MsgpackToJson(m.header);
    CHECK(j["shape"] == Json({3, 2}));
    CHECK(j["bin"] == 2);
    CHECK(j["extent"] == Json({-3, 2, 1, 5}));
    CHECK(j["valid"] == Json({1, 2, 0, 2}));   // best covered, in preview pixels
    CHECK(j["window"] == Json({1, 3, 0, 2}));  // frame 0's [0, 2) x [0, 4)
    CHECK(j["n_included"] == 4);
    const std::vector<std::uint8_t>& counts = j["counts"].get_binary();
    REQUIRE(counts.size() == 6 * sizeof(std::uint16_t));
    std::vector<std::uint16_t> fewest(6);
    std::memcpy(fewest.data(), counts.data(), counts.size());
    CHECK(fewest == std::vector<std::uint16_t>{1, 3, 1, 3, 1, 3});
    CHECK_THROWS_AS(EncodeMosaic(SeriesId::Int(2), 5, 0, MosaicPreview{}), std::invalid_argument);
  }
  SECTION("event with missing indices") {
    Event e{"warning", "frame_gap", "frames 2-3 missing", SeriesId::Int(1), 4, {2, 3}, 2};
    const Json j = MsgpackToJson(EncodeEvent(e).header);
    CHECK(j["level"] == "warning");
    CHECK(j["code"] == "frame_gap");
    CHECK(j["series"] == 1);
    CHECK(j["frame"] == 4);
    CHECK(j["missing"] == Json({2, 3}));
    CHECK(j["missing_count"] == 2);
    const Json plain = MsgpackToJson(EncodeEvent(Event{"error", "bad_msgpack", "x", {}, {}, {}, 0}).header);
    CHECK(plain["series"].is_null());
    CHECK(plain["frame"].is_null());
    CHECK_FALSE(plain.contains("missing"));
  }
  SECTION("quality and series_end") {
    EngineQuality q;
    q.num_frames = 3;
    q.consistency_rms_px = 0.05;
    q.flagged_frames = 1;
    const Json jq = MsgpackToJson(EncodeQuality(SeriesId::Int(1), q).header);
    CHECK(jq["n_frames"] == 3);
    CHECK(jq["consistency_rms_px"] == 0.05);
    CHECK(jq["flagged_frames"] == 1);
    CHECK(jq["drift_rate_A_per_s"].is_null());
    SeriesEndSummary s;
    s.series = SeriesId::Str("x");
    s.n_frames = 3;
    s.reason = "series_end";
    s.files = {"/tmp/x/shifts.csv"};
    const Json je = MsgpackToJson(EncodeSeriesEnd(s).header);
    CHECK(je["files"] == Json({"/tmp/x/shifts.csv"}));
    CHECK(je["n_frames"] == 3);
    CHECK(je["frames_sent"].is_null());
  }
}

}  // namespace
}  // namespace livealign
