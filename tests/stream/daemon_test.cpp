// The daemon's plumbing over real TCP sockets on 127.0.0.1, with the light
// TracerEngine standing in for the registration engine (the end-to-end tests
// with the real engine are in daemon_engine_test.cpp).
#include "stream/daemon.hpp"

#include <catch2/catch.hpp>
#include <zmq.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "stream/codec.hpp"
#include "stream/stream_clients.hpp"
#include "tests/stream/stream_test_util.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using testing::FrameHeaderFor;
using testing::kTimeout;
using testing::LocalDaemonOptions;
using testing::TracerPixels;
using Json = nlohmann::json;

const Shape kShape{8, 6};

struct Harness {
  explicit Harness(const std::string& pattern, const std::string& out = "",
                   DaemonOptions options = {}, bool use_options = false)
      : daemon(use_options ? options : LocalDaemonOptions(pattern, out), testing::TracerFactory()) {
    daemon.Start();
    subscriber = std::make_unique<ResultSubscriber>(daemon.publish_endpoint());
    control = std::make_unique<ControlClient>(daemon.control_endpoint());
    REQUIRE(SyncSubscriber(*subscriber, *control, kTimeout));
    sender = std::make_unique<FrameSender>(daemon.source_endpoint(),
                                           pattern == "pull" ? "push" : "pub", false);
    REQUIRE(sender->WaitForPeer(kTimeout));
  }
  ~Harness() {
    daemon.Stop();
    daemon.Wait();
  }
  void SendFrame(const SeriesId& series, frame_id_t index, float x, float y) {
    const std::vector<float> pixels = TracerPixels(kShape, x, y);
    sender->SendFrame(FrameHeaderFor(series, index, kShape), pixels.data(),
                      pixels.size() * sizeof(float));
  }
  void Start(const SeriesId& series) {
    SeriesStart start;
    start.series = series;
    start.shape = kShape;
    start.dtype = PixelType::kFloat32;
    sender->SendSeriesStart(start);
  }
  Json WaitDrift(frame_id_t frame) {
    while (true) {
      auto m = subscriber->WaitFor("drift", kTimeout);
      REQUIRE(m);
      if (m->header["frame"] == frame) return m->header;
    }
  }
  Daemon daemon;
  std::unique_ptr<ResultSubscriber> subscriber;
  std::unique_ptr<ControlClient> control;
  std::unique_ptr<FrameSender> sender;
};

TEST_CASE("daemon registers a series sent over PULL and writes its outputs", "[stream][daemon]") {
  const std::string out = testing::ScratchDir("daemon_pull");
  Harness h("pull", out);
  const SeriesId series = SeriesId::Str("run 1");
  h.Start(series);
  for (int i = 0; i < 6; ++i) h.SendFrame(series, i, 0.5f * i, -0.25f * i);
  h.sender->SendSeriesEnd(SeriesEnd{series, 6});

  std::vector<Json> drifts;
  bool saw_average = false;
  Json end;
  while (end.is_null()) {
    auto m = h.subscriber->Receive(kTimeout);
    REQUIRE(m);
    if (m->topic == "drift") drifts.push_back(m->header);
    if (m->topic == "average") {
      saw_average = true;
      CHECK(m->data.size() == static_cast<std::size_t>(kShape.Pixels()) * sizeof(float));
      CHECK(m->header["shape"] == Json({kShape.rows, kShape.cols}));
    }
    if (m->topic == "series_end") end = m->header;
  }
  REQUIRE(drifts.size() == 7);  // one per frame, and the final one
  for (int i = 0; i < 6; ++i) {
    CHECK(drifts[i]["frame"] == i);
    CHECK(drifts[i]["n_frames"] == i + 1);
    CHECK(drifts[i]["latency_ms"].get<double>() >= 0);
  }
  const Json& last = drifts.back();
  CHECK(last["final"] == true);
  REQUIRE(last["shift_x_px"].size() == 6);
  for (int i = 0; i < 6; ++i) {
    CHECK_THAT(last["shift_x_px"][i].get<double>(), Catch::Matchers::WithinAbs(0.5 * i, 1e-6));
    CHECK_THAT(last["shift_y_px"][i].get<double>(), Catch::Matchers::WithinAbs(-0.25 * i, 1e-6));
  }
  CHECK(saw_average);
  CHECK(end["series"] == "run 1");
  CHECK(end["n_frames"] == 6);
  CHECK(end["reason"] == "series_end");
  CHECK(end["dir"] == out + "/run_1");
  REQUIRE(end["files"].size() == 2);
  CHECK(std::filesystem::exists(out + "/run_1/shifts.csv"));
  const Json report = Json::parse(std::ifstream(out + "/run_1/report.json"));
  CHECK(report["wire_frame_indices"].size() == 6);
  CHECK(report["live"]["frames_sent"] == 6);

  const auto status = h.control->Request("status", kTimeout);
  REQUIRE(status);
  CHECK((*status)["ok"] == true);
  CHECK((*status)["frames_accepted"] == 6);
  CHECK((*status)["frames_lost"] == 0);
  CHECK((*status)["series_completed"] == 1);
  CHECK((*status)["state"] == "idle");
}

TEST_CASE("daemon drops every kind of bad input with an event and the series goes on",
          "[stream][daemon]") {
  Harness h("pull");
  const SeriesId series = SeriesId::Int(5);
  h.Start(series);
  h.SendFrame(series, 0, 1, 2);
  h.WaitDrift(0);

  const std::vector<std::uint8_t> good_bytes =
      Json::to_msgpack({{"htype", "frame"}, {"series", 5}, {"frame", 1},
                        {"shape", {kShape.rows, kShape.cols}}, {"dtype", "float32"}});
  const std::string good_header(good_bytes.begin(), good_bytes.end());
  const std::vector<float> pixels = TracerPixels(kShape, 3, 4);
  const std::string payload(reinterpret_cast<const char*>(pixels.data()),
                            pixels.size() * sizeof(float));
  auto header_with = [&](const std::string& key, Json value) {
    Json j = Json::from_msgpack(good_header);
    if (value.is_null()) j.erase(key); else j[key] = value;
    const auto bytes = Json::to_msgpack(j);
    return std::string(bytes.begin(), bytes.end());
  };
  std::vector<float> nan_pixels = pixels;
  nan_pixels[10] = std::nanf("");
  std::vector<float> inf_pixels = pixels;
  inf_pixels[11] = INFINITY;
  const std::vector<float> constant(pixels.size(), 3.0f);
  auto bytes_of = [](const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  };
  const Shape other{6, 8};
  const std::vector<float> other_pixels = TracerPixels(other, 0, 0);

  struct Bad {
    std::vector<std::string> parts;
    std::string code;
  };
  const std::vector<Bad> bad = {
      {{"\xc1 not msgpack", payload}, "bad_msgpack"},
      {{header_with("frame", nullptr), payload}, "missing_key"},
      {{header_with("frame", "one"), payload}, "bad_type"},
      {{header_with("dtype", "float16"), payload}, "unknown_dtype"},
      {{header_with("htype", "image"), payload}, "unknown_htype"},
      {{good_header, payload.substr(4)}, "bad_payload_size"},
      {{header_with("shape", {1 << 14, 1 << 14}), payload}, "too_many_pixels"},
      {{header_with("shape", {other.rows, other.cols}), bytes_of(other_pixels)}, "shape_change"},
      {{header_with("dtype", "uint8"), std::string(kShape.Pixels(), '\x01')}, "dtype_change"},
      {{good_header, bytes_of(nan_pixels)}, "non_finite"},
      {{good_header, bytes_of(inf_pixels)}, "non_finite"},
      {{good_header, bytes_of(constant)}, "constant_frame"},
      {{header_with("frame", 0), payload}, "duplicate_frame"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.code);
    h.sender->SendRaw(b.parts);
    const auto event = h.subscriber->WaitFor("event", kTimeout, b.code);
    REQUIRE(event);
    // A duplicate is harmless (a sender re-sending after a restart).
    CHECK(event->header["level"] == (b.code == "duplicate_frame" ? "info" : "error"));
    CHECK_FALSE(event->header["message"].get<std::string>().empty());
  }
  // The series goes on, undisturbed; a gap is reported with its indices.
  h.SendFrame(series, 1, 3, 4);
  CHECK(h.WaitDrift(1)["n_frames"] == 2);
  h.SendFrame(series, 4, 5, 6);
  const auto gap = h.subscriber->WaitFor("event", kTimeout, "frame_gap");
  REQUIRE(gap);
  CHECK(gap->header["missing"] == Json({2, 3}));
  CHECK(gap->header["missing_count"] == 2);
  CHECK(gap->header["level"] == "warning");
  const Json drift = h.WaitDrift(4);
  CHECK(drift["frame_indices"] == Json({0, 1, 4}));
  CHECK(drift["shift_x_px"] == Json({1.0, 3.0, 5.0}));
  // A late frame of the gap is out of order.
  h.SendFrame(series, 3, 9, 9);
  REQUIRE(h.subscriber->WaitFor("event", kTimeout, "out_of_order"));

  const auto status = h.control->Request("status", kTimeout);
  REQUIRE(status);
  const Json& errors = (*status)["errors_by_code"];
  for (const char* code : {"bad_msgpack", "missing_key", "bad_type", "unknown_dtype",
                           "unknown_htype", "bad_payload_size", "too_many_pixels", "shape_change",
                           "dtype_change", "constant_frame", "duplicate_frame", "out_of_order",
                           "frame_gap"}) {
    CAPTURE(code);
    CHECK(errors.value(code, 0) == 1);
  }
  CHECK(errors["non_finite"] == 2);
  CHECK((*status)["frames_accepted"] == 3);
  CHECK((*status)["frames_missing"] == 2);
  CHECK((*status)["bad_messages"] == 7);
  CHECK((*status)["series"] == "5");
  CHECK((*status)["n_frames"] == 3);
}

TEST_CASE("daemon takes frames over SUB and answers a late subscriber's snapshot",
          "[stream][daemon]") {
  Harness h("sub");
  const SeriesId series = SeriesId::Str("s");
  h.Start(series);
  for (int i = 0; i < 4; ++i) h.SendFrame(series, i, static_cast<float>(i), 0);
  h.WaitDrift(3);
  REQUIRE(h.subscriber->WaitFor("quality", kTimeout));

  ResultSubscriber late(h.daemon.publish_endpoint());
  const auto snapshot = h.control->Request("snapshot", kTimeout);
  REQUIRE(snapshot);
  CHECK((*snapshot)["ok"] == true);
  CHECK((*snapshot)["drift"]["frame"] == 3);
  CHECK((*snapshot)["drift"]["shift_x_px"] == Json({0.0, 1.0, 2.0, 3.0}));
  CHECK((*snapshot)["quality"]["n_frames"] == 4);
  CHECK((*snapshot)["average"]["shape"] == Json({kShape.rows, kShape.cols}));

  const auto bad = h.control->Request("fly", kTimeout);
  REQUIRE(bad);
  CHECK((*bad)["ok"] == false);
  CHECK((*bad)["code"] == "unknown_cmd");
}

TEST_CASE("daemon ends a series on a new series_start, implicit starts and restarts",
          "[stream][daemon]") {
  const std::string out = testing::ScratchDir("daemon_restart");
  Harness h("pull", out);
  h.Start(SeriesId::Int(1));
  h.SendFrame(SeriesId::Int(1), 0, 1, 1);
  h.SendFrame(SeriesId::Int(1), 1, 2, 2);
  h.Start(SeriesId::Int(2));  // ends series 1
  auto end1 = h.subscriber->WaitFor("series_end", kTimeout);
  REQUIRE(end1);
  CHECK(end1->header["series"] == 1);
  CHECK(end1->header["n_frames"] == 2);
  CHECK(end1->header["reason"] == "series_start");
  CHECK(std::filesystem::exists(out + "/1/shifts.csv"));

  // A frame of series 3 without a series_start ends 2 and starts 3.
  h.SendFrame(SeriesId::Int(3), 0, 1, 1);
  auto end2 = h.subscriber->WaitFor("series_end", kTimeout);
  REQUIRE(end2);
  CHECK(end2->header["series"] == 2);
  CHECK(end2->header["n_frames"] == 0);
  REQUIRE(h.subscriber->WaitFor("event", kTimeout, "implicit_series_start"));
  CHECK(h.WaitDrift(0)["series"] == 3);

  // Late frames of an ended series are refused; a series_start restarts it.
  h.SendFrame(SeriesId::Int(1), 2, 1, 1);
  REQUIRE(h.subscriber->WaitFor("event", kTimeout, "series_ended"));
  h.Start(SeriesId::Int(1));
  h.SendFrame(SeriesId::Int(1), 0, 7, 7);
  auto end3 = h.subscriber->WaitFor("series_end", kTimeout);
  REQUIRE(end3);
  CHECK(end3->header["series"] == 3);
  const Json restarted = h.WaitDrift(0);
  CHECK(restarted["series"] == 1);
  CHECK(restarted["n_frames"] == 1);
  CHECK(restarted["shift_x_px"] == Json({7.0}));
  h.sender->SendSeriesEnd(SeriesEnd{SeriesId::Int(1), std::nullopt});
  auto end4 = h.subscriber->WaitFor("series_end", kTimeout);
  REQUIRE(end4);
  CHECK(end4->header["series"] == 1);
  CHECK(end4->header["n_frames"] == 1);

  const auto save = h.control->Request("save", kTimeout);
  REQUIRE(save);
  CHECK((*save)["ok"] == false);  // nothing running
}

TEST_CASE("daemon with SUB and a tiny queue reports lost frames by index", "[stream][daemon]") {
  DaemonOptions options = LocalDaemonOptions("sub", "");
  options.queue_bytes = 1;  // one frame at a time: a burst must overflow
  Harness h("sub", "", options, true);
  const SeriesId series = SeriesId::Int(9);
  h.Start(series);
  constexpr int kFrames = 200;
  for (int i = 0; i < kFrames; ++i) h.SendFrame(series, i, 0, 0);
  h.sender->SendSeriesEnd(SeriesEnd{series, kFrames});
  const auto end = h.subscriber->WaitFor("series_end", kTimeout);
  REQUIRE(end);
  const auto status = h.control->Request("status", kTimeout);
  REQUIRE(status);
  const int accepted = (*status)["frames_accepted"];
  const int lost = (*status)["frames_lost"];
  const int missing = (*status)["frames_missing"];
  CHECK(end->header["n_frames"] == accepted);
  // Every frame is accounted for: registered or reported missing (lost in the
  // daemon's queue, or dropped by ZeroMQ before it reached the daemon).
  CHECK(accepted + missing == kFrames);
  CHECK(lost <= missing);
  if (lost > 0) CHECK((*status)["errors_by_code"]["queue_full"] == lost);
  CHECK((*status)["queue_high_water_bytes"].get<std::int64_t>() <=
        kShape.Pixels() * 4 + 256);
}

TEST_CASE("daemon stop finishes the running series and writes it", "[stream][daemon]") {
  const std::string out = testing::ScratchDir("daemon_stop");
  Harness h("pull", out);
  h.Start(SeriesId::Str("cut"));
  for (int i = 0; i < 3; ++i) h.SendFrame(SeriesId::Str("cut"), i, 1, 1);
  h.WaitDrift(2);
  REQUIRE(h.control->Request("shutdown", kTimeout));
  const auto end = h.subscriber->WaitFor("series_end", kTimeout);
  REQUIRE(end);
  CHECK(end->header["reason"] == "shutdown");
  CHECK(end->header["n_frames"] == 3);
  h.daemon.Wait();
  CHECK(h.daemon.StopRequested());
  CHECK(std::filesystem::exists(out + "/cut/shifts.csv"));
}

// One control request with its own REQ socket; the decoded reply.
Json RawControl(const std::string& endpoint, const Json& request) {
  zmq::context_t context;
  zmq::socket_t req(context, zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.set(zmq::sockopt::rcvtimeo, static_cast<int>(kTimeout.count()));
  req.connect(endpoint);
  const std::vector<std::uint8_t> bytes = Json::to_msgpack(request);
  req.send(zmq::buffer(bytes.data(), bytes.size()), zmq::send_flags::none);
  zmq::message_t reply;
  REQUIRE(req.recv(reply, zmq::recv_flags::none));
  return MsgpackToJson(std::string_view(reply.data<char>(), reply.size()));
}

TEST_CASE("with control_token_required, save/reset/shutdown need the token", "[stream][daemon]") {
  DaemonOptions o = LocalDaemonOptions("pull", "");
  o.control_token_required = true;
  o.control_token = "correct horse";
  Daemon daemon(o, testing::TracerFactory());
  daemon.Start();
  const std::string control = daemon.control_endpoint();

  CHECK(RawControl(control, {{"cmd", "status"}})["ok"] == true);
  CHECK(RawControl(control, {{"cmd", "snapshot"}})["ok"] == true);
  for (const std::string cmd : {"save", "reset", "shutdown"}) {
    CAPTURE(cmd);
    const Json none = RawControl(control, {{"cmd", cmd}});
    CHECK(none["ok"] == false);
    CHECK(none["code"] == "unauthorized");
    CHECK(none["error"] == cmd + " refused: the request has no token");
    const Json wrong = RawControl(control, {{"cmd", cmd}, {"token", "correct horsE"}});
    CHECK(wrong["ok"] == false);
    CHECK(wrong["error"] == cmd + " refused: wrong token");
    CHECK(RawControl(control, {{"cmd", cmd}, {"token", "correct"}})["ok"] == false);
  }
  CHECK_FALSE(daemon.StopRequested());
  CHECK(daemon.Status()["errors_by_code"]["unauthorized"] == 9);
  CHECK(RawControl(control, {{"cmd", "reset"}, {"token", "correct horse"}})["ok"] == true);
  CHECK(RawControl(control, {{"cmd", "shutdown"}, {"token", "correct horse"}})["ok"] == true);
  daemon.Wait();
  CHECK(daemon.StopRequested());
}

TEST_CASE("with control_token_required and no token, state changes are refused",
          "[stream][daemon]") {
  DaemonOptions o = LocalDaemonOptions("pull", "");
  o.control_token_required = true;
  Daemon daemon(o, testing::TracerFactory());
  daemon.Start();
  const Json reply = RawControl(daemon.control_endpoint(), {{"cmd", "shutdown"}, {"token", ""}});
  CHECK(reply["ok"] == false);
  CHECK(reply["error"].get<std::string>().find("without --control-token-file") !=
        std::string::npos);
  CHECK(RawControl(daemon.control_endpoint(), {{"cmd", "status"}})["ok"] == true);
  CHECK_FALSE(daemon.StopRequested());
  daemon.Stop();
  daemon.Wait();
}

}  // namespace
}  // namespace livealign
