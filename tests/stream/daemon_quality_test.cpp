// Quality figures through the daemon with the real RegistrationEngine: the shift
// matrices, the latest raw frame, the image-quality figures in `quality`, and
// the stop-when-good events, over TCP on 127.0.0.1.
#include "stream/daemon.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/simulator.hpp"
#include "stream/stream_clients.hpp"
#include "tests/stream/stream_test_util.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using testing::kTimeout;
using Json = nlohmann::json;

// A msgpack bin arrives as a JSON binary value (MsgpackToJson).
std::vector<std::uint8_t> Bytes(const Json& bin) { return bin.get_binary(); }

std::vector<float> Floats(const Json& bin) {
  const std::vector<std::uint8_t> bytes = Bytes(bin);
  std::vector<float> floats(bytes.size() / sizeof(float));
  std::memcpy(floats.data(), bytes.data(), floats.size() * sizeof(float));
  return floats;
}

// Everything published for one series, up to and including its series_end.
struct SeriesMessages {
  Json final_drift, last_quality, last_matrices, last_frame, end;
  std::size_t last_frame_bytes = 0;
  int quality_messages = 0;
  int quality_without_figures = 0;
  int matrices_messages = 0;
  int frame_messages = 0;
  std::vector<Json> good_events, stop_events;
};

SeriesMessages Collect(ResultSubscriber& subscriber) {
  SeriesMessages got;
  while (got.end.is_null()) {
    auto m = subscriber.Receive(kTimeout);
    REQUIRE(m);
    const Json& h = m->header;
    if (m->topic == "drift" && h["final"] == true) got.final_drift = h;
    if (m->topic == "quality") {
      ++got.quality_messages;
      if (!h.contains("good") || !h.contains("reason") || !h.contains("snr")) {
        ++got.quality_without_figures;
      }
      got.last_quality = h;
    }
    if (m->topic == "matrices") {
      ++got.matrices_messages;
      got.last_matrices = h;
    }
    if (m->topic == "frame") {
      ++got.frame_messages;
      got.last_frame = h;
      got.last_frame_bytes = m->data.size();
    }
    if (m->topic == "event" && h["code"] == "good") got.good_events.push_back(h);
    if (m->topic == "event" && h["code"] == "stop") got.stop_events.push_back(h);
    if (m->topic == "series_end") got.end = h;
  }
  return got;
}

TEST_CASE("the daemon publishes shift matrices, the latest frame and stop-when-good quality",
          "[stream][integration][daemon_quality]") {
  const std::string out = testing::ScratchDir("daemon_quality");
  DaemonOptions options = testing::LocalDaemonOptions("pull", out);
  options.engine.target_snr = 1e-3;  // reached as soon as there is any signal
  options.engine.max_frames = 15;
  Daemon daemon(options);
  daemon.Start();
  ResultSubscriber subscriber(daemon.publish_endpoint());
  ControlClient control(daemon.control_endpoint());
  REQUIRE(SyncSubscriber(subscriber, control, kTimeout));
  FrameSender sender(daemon.source_endpoint(), "push", false);
  REQUIRE(sender.WaitForPeer(kTimeout));

  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  sim.frame_time_s = 0.1;
  Simulator microscope(sim, 21);
  constexpr int kFrames = 20;
  const SeriesId id = SeriesId::Str("q");
  SeriesStart start;
  start.series = id;
  start.shape = sim.shape;
  start.dtype = PixelType::kFloat32;
  start.pixel_size_x_A = 0.25;
  start.pixel_size_y_A = 0.3;
  start.expected_frames = kFrames;
  sender.SendSeriesStart(start);
  for (int i = 0; i < kFrames; ++i) {
    const Frame frame = microscope.NextFrame();
    FrameMessage header = testing::FrameHeaderFor(id, i, sim.shape);
    header.timestamp_s = frame.header().timestamp_s;
    sender.SendFrame(header, frame.data(), frame.pixels().size() * sizeof(float));
  }
  sender.SendSeriesEnd(SeriesEnd{id, kFrames});
  const SeriesMessages got = Collect(subscriber);
  REQUIRE(got.end["n_frames"] == kFrames);

  {  // matrices: k x k, consistent with the final shifts
    REQUIRE(got.matrices_messages >= 1);
    const Json& m = got.last_matrices;
    const int k = m["k"];
    REQUIRE(k == kFrames);
    CHECK(m["n_frames"] == kFrames);
    const std::vector<float> x = Floats(m["x"]), y = Floats(m["y"]);
    const std::vector<std::uint8_t> status = Bytes(m["status"]);
    REQUIRE(m["x"].get_binary().size() == static_cast<std::size_t>(k * k * 4));
    REQUIRE(m["y"].get_binary().size() == static_cast<std::size_t>(k * k * 4));
    REQUIRE(status.size() == static_cast<std::size_t>(k * k));
    REQUIRE(got.final_drift.is_object());
    const Json& sx = got.final_drift["shift_x_px"];
    const Json& sy = got.final_drift["shift_y_px"];
    int inliers = 0;
    for (int i = 0; i < k; ++i) {
      for (int j = 0; j < k; ++j) {
        const std::size_t at = static_cast<std::size_t>(i * k + j);
        CAPTURE(i, j);
        REQUIRE(status[at] <= 3);
        // The diagonal is the frame against itself (0, no measurement).
        if (status[at] == 0) {
          if (i != j) CHECK(std::isnan(x[at]));
          continue;
        }
        if (status[at] != 1) continue;
        ++inliers;
        // Entry (i, j) is j_from_i ~ s_j - s_i.
        CHECK_THAT(x[at], Catch::Matchers::WithinAbs(sx[j].get<double>() - sx[i].get<double>(), 1.0));
        CHECK_THAT(y[at], Catch::Matchers::WithinAbs(sy[j].get<double>() - sy[i].get<double>(), 1.0));
      }
    }
    CHECK(inliers >= k * (k - 1) / 2);
  }

  {  // frame: the latest raw frame in the form of average
    REQUIRE(got.frame_messages >= 1);
    const Json& f = got.last_frame;
    CHECK(f["frame"] == kFrames - 1);  // the last frame of a series always gets one
    CHECK(f["n_frames"] == kFrames);
    CHECK(f["shape"] == Json::array({128, 128}));
    CHECK(f["dtype"] == "float32");
    CHECK(f["valid"] == Json::array({0, 128, 0, 128}));
    CHECK(got.last_frame_bytes == std::size_t{128} * 128 * sizeof(float));
  }

  {  // quality: every message carries the image-quality figures; good and stop are events
    CHECK(got.quality_messages >= kFrames);
    CHECK(got.quality_without_figures == 0);
    const Json& q = got.last_quality;
    CHECK(q["n_frames"] == kFrames);
    CHECK(q["image_quality_n_frames"] == kFrames);  // fresh at the series end
    CHECK(q["frc_status"] != "no_signal");
    CHECK(q["snr"].get<double>() > 1e-3);
    CHECK(q["good"] == true);
    CHECK(q["stop"] == true);
    CHECK_FALSE(q["reason"].get<std::string>().empty());
    CHECK(q["pixel_size_A"] == Json::array({0.3, 0.25}));  // [y, x]
    CHECK(q["lattice_reciprocal"].is_array());
    // The history ends at the final computation and grows in frames.
    const Json& history = q["quality_history"];
    REQUIRE(history.is_array());
    REQUIRE_FALSE(history.empty());
    CHECK(history.back()["n_frames"] == kFrames);
    for (std::size_t i = 1; i < history.size(); ++i) {
      CHECK(history[i]["n_frames"].get<int>() > history[i - 1]["n_frames"].get<int>());
    }
    for (const char* key : {"frc_resolution_cycles_per_px", "frc_resolution_A",
                            "info_transfer_cycles_per_px", "info_transfer_A",
                            "single_frame_info_transfer_A", "frames_for_next_resolution",
                            "drift_trend", "drift_settled", "drift_settled_since_frame",
                            "valid", "verdict", "lattice_offset_observable",
                            "consistency_rms_px"}) {
      CAPTURE(key);
      CHECK(q.contains(key));
    }
    // Announced once each, with the reason as the message.
    REQUIRE(got.good_events.size() == 1);
    CHECK(got.good_events[0]["level"] == "info");
    CHECK_FALSE(got.good_events[0]["message"].get<std::string>().empty());
    CHECK(got.stop_events.size() == 1);
  }

  {  // report.json has the full image quality, FRC curve included
    const Json report = Json::parse(std::ifstream(out + "/q/report.json"));
    const Json& iq = report["image_quality"];
    REQUIRE(iq.is_object());
    CHECK(iq["image_quality_n_frames"] == kFrames);
    CHECK(iq["good"] == true);
    CHECK(iq["frc_curve"]["frc"].size() > 0);
    CHECK(report["quality_history"].is_array());
    CHECK(report["live"]["daemon_options"]["quality_interval_s"] == 2.0);
  }
}

TEST_CASE("a back end without image quality publishes no matrices or frame messages",
          "[stream][daemon_quality]") {
  DaemonOptions options = testing::LocalDaemonOptions("pull", "");
  Daemon daemon(options, testing::TracerFactory());
  daemon.Start();
  ResultSubscriber subscriber(daemon.publish_endpoint());
  ControlClient control(daemon.control_endpoint());
  REQUIRE(SyncSubscriber(subscriber, control, kTimeout));
  FrameSender sender(daemon.source_endpoint(), "push", false);
  REQUIRE(sender.WaitForPeer(kTimeout));
  const Shape shape{8, 8};
  const SeriesId id = SeriesId::Int(3);
  for (int i = 0; i < 3; ++i) {
    const std::vector<float> pixels = testing::TracerPixels(shape, 0.5f * i, 0);
    sender.SendFrame(testing::FrameHeaderFor(id, i, shape), pixels.data(),
                     pixels.size() * sizeof(float));
  }
  sender.SendSeriesEnd(SeriesEnd{id, 3});
  const SeriesMessages got = Collect(subscriber);
  CHECK(got.end["n_frames"] == 3);
  CHECK(got.matrices_messages == 0);
  CHECK(got.frame_messages == 0);
  // The (empty) figures are still there, and say nothing is good.
  CHECK(got.quality_without_figures == 0);
  CHECK(got.last_quality["good"] == false);
  CHECK(got.last_quality["frc_status"] == "no_signal");
  CHECK(got.good_events.empty());
}

}  // namespace
}  // namespace livealign
