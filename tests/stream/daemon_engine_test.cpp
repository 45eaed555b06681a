// End to end with the real RegistrationEngine: simulator -> daemon -> subscriber
// over TCP on 127.0.0.1, and the real `livealign serve` binary stopped by SIGTERM.
#include "stream/daemon.hpp"

#include <catch2/catch.hpp>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "core/simulator.hpp"
#include "stream/stream_clients.hpp"
#include "tests/stream/stream_test_util.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/test_data.hpp"

extern char** environ;

namespace livealign {
namespace {

using testing::kTimeout;
using Json = nlohmann::json;

SimulatorOptions SmallSeries() {
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  sim.frame_time_s = 0.1;
  return sim;
}

void SendSeries(FrameSender& sender, const SeriesId& id, Simulator& microscope, int frames,
                PixelType dtype = PixelType::kUint16) {
  const Shape shape = microscope.options().shape;
  SeriesStart start;
  start.series = id;
  start.shape = shape;
  start.dtype = dtype;
  start.pixel_size_x_A = start.pixel_size_y_A = 0.25;
  start.expected_frames = frames;
  sender.SendSeriesStart(start);
  std::vector<std::uint16_t> counts(static_cast<std::size_t>(shape.Pixels()));
  for (int i = 0; i < frames; ++i) {
    const Frame frame = microscope.NextFrame();
    for (std::size_t p = 0; p < counts.size(); ++p) {
      counts[p] = static_cast<std::uint16_t>(std::lround(frame.data()[p]));
    }
    FrameMessage header;
    header.series = id;
    header.index = i;
    header.shape = shape;
    header.dtype = dtype;
    header.timestamp_s = frame.header().timestamp_s;
    sender.SendFrame(header, counts.data(), counts.size() * sizeof(std::uint16_t));
  }
}

TEST_CASE("daemon registers a simulated series against the ground truth",
          "[stream][integration][daemon_engine]") {
  const std::string pattern = GENERATE(as<std::string>{}, "pull", "sub");
  CAPTURE(pattern);
  const std::string out = testing::ScratchDir("daemon_engine_" + pattern);
  DaemonOptions options = testing::LocalDaemonOptions(pattern, out);
  options.keep_frames = true;
  // No queue-wait bound here (it has its own tests in daemon_parts_test):
  // under the thread sanitizer this series takes minutes, SUB frames then
  // wait longer than the default 5 s and are dropped, and the drift rate
  // this test checks had too few frames.
  options.max_queue_wait_s = 0;
  Daemon daemon(options);
  daemon.Start();
  ResultSubscriber subscriber(daemon.publish_endpoint());
  ControlClient control(daemon.control_endpoint());
  REQUIRE(SyncSubscriber(subscriber, control, kTimeout));
  FrameSender sender(daemon.source_endpoint(), pattern == "pull" ? "push" : "pub", false);
  REQUIRE(sender.WaitForPeer(kTimeout));

  constexpr int kFrames = 20;
  Simulator microscope(SmallSeries(), 11);
  SendSeries(sender, SeriesId::Str("sim"), microscope, kFrames);
  sender.SendSeriesEnd(SeriesEnd{SeriesId::Str("sim"), kFrames});

  Json final_drift, end;
  int drift_updates = 0;
  bool average_seen = false;
  while (end.is_null()) {
    auto m = subscriber.Receive(kTimeout);
    REQUIRE(m);
    if (m->topic == "drift") {
      if (m->header["final"] == true) final_drift = m->header; else ++drift_updates;
    }
    if (m->topic == "average") average_seen = true;
    if (m->topic == "series_end") end = m->header;
  }
  const auto status = control.Request("status", kTimeout);
  REQUIRE(status);
  // Frames sent before the SUB subscription could be dropped by ZeroMQ; the
  // daemon then says so. With PULL nothing may be lost.
  const int registered = end["n_frames"];
  if (pattern == "pull") {
    CHECK(registered == kFrames);
  } else {
    CHECK(registered + (*status)["frames_missing"].get<int>() == kFrames);
  }
  CHECK(drift_updates == registered);
  CHECK(average_seen);
  REQUIRE(final_drift.is_object());
  const Json& indices = final_drift["frame_indices"];
  const int first = indices[0];
  const Shift origin = microscope.TrueShift(first);
  for (std::size_t j = 0; j < indices.size(); ++j) {
    const Shift want = microscope.TrueShift(indices[j].get<int>()) - origin;
    CAPTURE(j);
    CHECK_THAT(final_drift["shift_x_px"][j].get<double>(), Catch::Matchers::WithinAbs(want.x, 0.25));
    CHECK_THAT(final_drift["shift_y_px"][j].get<double>(), Catch::Matchers::WithinAbs(want.y, 0.25));
  }
  CHECK(final_drift["drift_rate_A_per_s"].is_array());
  for (const char* file : {"shifts.csv", "average.tif", "report.json", "frames.tif"}) {
    CAPTURE(file);
    CHECK(std::filesystem::exists(out + "/sim/" + file));
  }
  const Json report = Json::parse(std::ifstream(out + "/sim/report.json"));
  CHECK(report["series"] == "sim");
  CHECK(report["live"]["frames_sent"] == kFrames);
}

// Reads lines from `fd` until one matches `pattern`; returns its groups, or
// nothing when the timeout passes or the pipe closes.

TEST_CASE("SIGTERM mid-series makes `livealign serve` write complete files and exit 0",
          "[stream][integration][daemon_engine]") {
  const std::string out = testing::ScratchDir("serve_sigterm");
  const std::string binary = testing::LivealignBinary();
  std::vector<std::string> args = {binary, "serve", "--source", "tcp://127.0.0.1:*",
                                   "--source-bind", "true", "--source-pattern", "pull",
                                   "--publish", "tcp://127.0.0.1:*", "--control",
                                   "tcp://127.0.0.1:*", "--out", out, "--threads", "1",
                                   "--http", "127.0.0.1:0"};
  testing::ChildProcess serve(args);
  const std::regex endpoints("frames from (\\S+) .*results on (\\S+), control on (\\S+)");
  const auto groups = serve.WaitForLine(endpoints, std::chrono::duration_cast<std::chrono::seconds>(kTimeout));
  REQUIRE(groups);
  const std::string source = (*groups)[0], publish = (*groups)[1], control_ep = (*groups)[2];

  {
    ResultSubscriber subscriber(publish);
    ControlClient control(control_ep);
    REQUIRE(SyncSubscriber(subscriber, control, kTimeout));
    FrameSender sender(source, "push", false);
    REQUIRE(sender.WaitForPeer(kTimeout));
    Simulator microscope(SmallSeries(), 5);
    SendSeries(sender, SeriesId::Int(7), microscope, 6);  // expected 6, no series_end
    // Wait until the last frame is registered, then stop mid-series.
    while (true) {
      auto drift = subscriber.WaitFor("drift", kTimeout);
      REQUIRE(drift);
      if (drift->header["frame"] == 5) break;
    }
    serve.Signal(SIGTERM);
    auto end = subscriber.WaitFor("series_end", kTimeout);
    REQUIRE(end);
    CHECK(end->header["reason"] == "shutdown");
    CHECK(end->header["n_frames"] == 6);
  }
  CHECK(serve.Wait() == 0);
  std::ifstream csv(out + "/7/shifts.csv");
  REQUIRE(csv);
  int lines = 0;
  for (std::string l; std::getline(csv, l);) ++lines;
  CHECK(lines == 7);  // header + 6 frames
  CHECK(std::filesystem::exists(out + "/7/average.tif"));
  const Json report = Json::parse(std::ifstream(out + "/7/report.json"));
  CHECK(report["live"]["end_reason"] == "shutdown");
  for (const auto& entry : std::filesystem::directory_iterator(out + "/7")) {
    CAPTURE(entry.path().string());
    CHECK(entry.path().extension() != ".tmp");  // no half-written leftovers
  }
}

}  // namespace
}  // namespace livealign
