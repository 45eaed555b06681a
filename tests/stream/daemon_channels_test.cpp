// Several detectors through the real daemon (docs/protocol.md, "Channels"):
// frames of two channels over ZeroMQ on 127.0.0.1, registered on one channel
// with the real RegistrationEngine, every channel averaged with the same
// shifts; bad channel input dropped, reported and counted; and the real
// `livealign apply` reproducing the daemon's average of the second channel.
#include "stream/daemon.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "adapters/npy_writer.hpp"
#include "adapters/tiff_io.hpp"
#include "core/averager.hpp"
#include "core/simulator.hpp"
#include "stream/stream_clients.hpp"
#include "tests/stream/stream_test_util.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using testing::kTimeout;
using Json = nlohmann::json;

std::string Msgpack(const Json& j) {
  const std::vector<std::uint8_t> bytes = Json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

std::string Bytes(const Frame& frame) {
  return std::string(reinterpret_cast<const char*>(frame.data()),
                     frame.pixels().size() * sizeof(float));
}

// The expected counts of an inverted-contrast detector (bright where HAADF is
// dark, as bright field) seeing the same specimen: a decreasing function of
// the HAADF expected counts, 4 counts/px in vacuum.
Frame InvertedExpected(FrameView haadf, double haadf_mean) {
  Frame out(haadf.shape());
  for (int r = 0; r < haadf.rows(); ++r) {
    for (int c = 0; c < haadf.cols(); ++c) {
      out.at(r, c) = static_cast<float>(4.0 * std::exp(-haadf.at(r, c) / haadf_mean));
    }
  }
  return out;
}

Frame PoissonSample(FrameView expected, std::mt19937_64* rng) {
  Frame out(expected.shape());
  for (int r = 0; r < expected.rows(); ++r) {
    for (int c = 0; c < expected.cols(); ++c) {
      std::poisson_distribution<int> counts(std::max(1e-9, double(expected.at(r, c))));
      out.at(r, c) = static_cast<float>(counts(*rng));
    }
  }
  return out;
}

double Mean(FrameView f) {
  double sum = 0;
  for (int r = 0; r < f.rows(); ++r) {
    for (int c = 0; c < f.cols(); ++c) sum += f.at(r, c);
  }
  return sum / static_cast<double>(f.shape().Pixels());
}

// Pearson correlation of a and b over the rectangle (frame-0 coordinates).
double Correlation(FrameView a, FrameView b, const AverageImage::Rect& rect) {
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, n = 0;
  for (int r = rect.row0; r < rect.row1; ++r) {
    for (int c = rect.col0; c < rect.col1; ++c) {
      const double x = a.at(r, c), y = b.at(r, c);
      sa += x; sb += y; saa += x * x; sbb += y * y; sab += x * y; n += 1;
    }
  }
  const double cov = sab / n - sa / n * sb / n;
  return cov / std::sqrt((saa / n - sa / n * sa / n) * (sbb / n - sb / n * sb / n));
}

Frame FrameFromMessage(const ReceivedMessage& m) {
  const Shape shape{m.header["shape"][0].get<int>(), m.header["shape"][1].get<int>()};
  Frame frame(shape);
  REQUIRE(m.data.size() == frame.pixels().size() * sizeof(float));
  std::memcpy(frame.data(), m.data.data(), m.data.size());
  return frame;
}

double MaxAbsDiff(FrameView a, FrameView b) {
  double worst = 0;
  for (int r = 0; r < a.rows(); ++r) {
    for (int c = 0; c < a.cols(); ++c) {
      worst = std::max(worst, double(std::fabs(a.at(r, c) - b.at(r, c))));
    }
  }
  return worst;
}

DaemonOptions KeepFrames(DaemonOptions options) {
  options.keep_frames = true;
  return options;
}

struct LiveDaemon {
  explicit LiveDaemon(const std::string& out)
      : daemon(KeepFrames(testing::LocalDaemonOptions("pull", out))),
        started((daemon.Start(), true)),
        subscriber(daemon.publish_endpoint()),
        control(daemon.control_endpoint()),
        sender(daemon.source_endpoint(), "push", false) {}
  Daemon daemon;
  bool started;
  ResultSubscriber subscriber;
  ControlClient control;
  FrameSender sender;
};

TEST_CASE("two detectors through the daemon: the second channel is averaged with HAADF's shifts "
          "and `apply` reproduces it",
          "[stream][integration][channels]") {
  const std::string out = testing::ScratchDir("daemon_channels");
  LiveDaemon live(out);
  REQUIRE(SyncSubscriber(live.subscriber, live.control, kTimeout));
  REQUIRE(live.sender.WaitForPeer(kTimeout));

  constexpr int kFrames = 24;
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  sim.frame_time_s = 0.1;
  sim.initial_velocity_px_per_frame = {0.7, -0.45};
  Simulator microscope(sim, 17);
  const double haadf_mean = Mean(microscope.NoiseFreeFrame(0));
  std::mt19937_64 rng(99);

  SeriesStart start;
  start.series = SeriesId::Str("two");
  start.shape = sim.shape;
  start.dtype = PixelType::kFloat32;
  start.expected_frames = kFrames;
  start.channels = {"BF", "HAADF"};  // not registered on the first
  start.register_channel = "HAADF";
  live.sender.SendSeriesStart(start);
  std::vector<Frame> bf_frames;
  for (int i = 0; i < kFrames; ++i) {
    const Frame haadf = microscope.NextFrame();
    bf_frames.push_back(PoissonSample(InvertedExpected(microscope.NoiseFreeFrame(i), haadf_mean), &rng));
    FrameMessage header = testing::FrameHeaderFor(start.series, i, sim.shape);
    header.timestamp_s = haadf.header().timestamp_s;
    header.channels = start.channels;
    live.sender.SendRaw({EncodeFrameHeader(header), Bytes(bf_frames.back()), Bytes(haadf)});
  }
  live.sender.SendSeriesEnd(SeriesEnd{start.series, kFrames});

  Json final_drift, end;
  std::optional<ReceivedMessage> bf_average, haadf_average;
  while (end.is_null()) {
    auto m = live.subscriber.Receive(kTimeout);
    REQUIRE(m);
    if (m->topic == "drift" && m->header["final"] == true) final_drift = m->header;
    if (m->topic == "average") {
      CHECK(m->header["channels"] == Json({"BF", "HAADF"}));
      if (m->header["channel"] == "BF") bf_average = m;
      if (m->header["channel"] == "HAADF") haadf_average = m;
    }
    if (m->topic == "series_end") end = m->header;
  }
  REQUIRE(end["n_frames"] == kFrames);
  REQUIRE(bf_average);
  REQUIRE(haadf_average);
  // Registered on HAADF: the shifts follow the simulated drift.
  for (int j = 0; j < kFrames; ++j) {
    const Shift want = microscope.TrueShift(j);
    CHECK_THAT(final_drift["shift_x_px"][j].get<double>(), Catch::Matchers::WithinAbs(want.x, 0.25));
    CHECK_THAT(final_drift["shift_y_px"][j].get<double>(), Catch::Matchers::WithinAbs(want.y, 0.25));
  }
  const std::string dir = out + "/two";
  for (const char* file : {"average.tif", "average_full.tif", "average_BF.tif", "average_BF_full.tif",
                           "average_HAADF.tif", "average_HAADF_full.tif", "shifts.csv", "report.json"}) {
    CAPTURE(file);
    CHECK(std::filesystem::exists(dir + "/" + file));
  }
  const Json report = Json::parse(std::ifstream(dir + "/report.json"));
  CHECK(report["channels"]["names"] == Json({"BF", "HAADF"}));
  CHECK(report["channels"]["register_channel"] == "HAADF");

  // The second channel's average against its noise-free image, and the
  // plain (unregistered) mean of its frames against the same.
  const Frame bf_live = FrameFromMessage(*bf_average);
  const AverageImage::Rect valid{bf_average->header["valid"][0].get<int>(),
                                 bf_average->header["valid"][1].get<int>(),
                                 bf_average->header["valid"][2].get<int>(),
                                 bf_average->header["valid"][3].get<int>()};
  REQUIRE_FALSE(valid.Empty());
  const Frame bf_truth = InvertedExpected(microscope.NoiseFreeFrame(0), haadf_mean);
  Frame plain(sim.shape);
  for (const Frame& f : bf_frames) {
    for (std::size_t p = 0; p < plain.pixels().size(); ++p) plain.data()[p] += f.data()[p] / kFrames;
  }
  const double registered_r = Correlation(bf_live, bf_truth, valid);
  const double plain_r = Correlation(plain, bf_truth, valid);
  std::cout << "two-detector series, " << kFrames << " frames of 128^2, registered on HAADF: "
            << "BF average vs noise-free BF r = " << registered_r << ", plain mean r = " << plain_r
            << " (over the common region " << valid << ")\n";
  CHECK(registered_r > plain_r + 0.05);
  CHECK(registered_r > 0.8);

  // The daemon's file, the message and `apply` of its shifts.csv to the BF stack.
  const FrameStack bf_file = ReadTiff(dir + "/average_BF_full.tif");
  REQUIRE(bf_file.frames.size() == 1);
  CHECK(MaxAbsDiff(bf_file.frames[0], bf_live) < 1e-6);
  const std::string stack = out + "/bf.npy";
  WriteNpy(stack, bf_frames);
  const std::string applied = out + "/applied";
  testing::ChildProcess apply({testing::LivealignBinary(), "apply", dir + "/shifts.csv", stack,
                               "--out", applied});
  REQUIRE(apply.Wait() == 0);
  const FrameStack applied_full = ReadTiff(applied + "/average_full.tif");
  REQUIRE(applied_full.frames.size() == 1);
  double lo = 1e300, hi = -1e300;
  for (float v : bf_live.pixels()) {
    lo = std::min(lo, double(v));
    hi = std::max(hi, double(v));
  }
  const double max_diff = MaxAbsDiff(applied_full.frames[0], bf_live);
  std::cout << "apply of the daemon's shifts.csv to the BF stack: max |difference| = " << max_diff
            << " counts (" << max_diff / (hi - lo) << " of the average's range " << hi - lo << ")\n";
  CHECK(max_diff / (hi - lo) < 1e-3);
  CHECK(std::filesystem::exists(applied + "/average.tif"));
  CHECK(std::filesystem::exists(applied + "/report.json"));
  // --keep-frames kept the BF frames as received: `apply` on them gives the
  // same average.
  const FrameStack kept = ReadTiff(dir + "/frames_BF.tif");
  REQUIRE(kept.frames.size() == kFrames);
  CHECK(MaxAbsDiff(kept.frames[3], bf_frames[3]) == 0);
  CHECK(ReadTiff(dir + "/frames.tif").frames.size() == kFrames);
  testing::ChildProcess apply_kept({testing::LivealignBinary(), "apply", dir + "/shifts.csv",
                                    dir + "/frames_BF.tif", "--out", applied + "_kept"});
  REQUIRE(apply_kept.Wait() == 0);
  CHECK(MaxAbsDiff(ReadTiff(applied + "_kept/average_full.tif").frames[0], bf_live) / (hi - lo) < 1e-3);
}

TEST_CASE("bad channel input is dropped, reported and counted; the series goes on",
          "[stream][integration][channels]") {
  const std::string out = testing::ScratchDir("daemon_channels_bad");
  LiveDaemon live(out);
  REQUIRE(SyncSubscriber(live.subscriber, live.control, kTimeout));
  REQUIRE(live.sender.WaitForPeer(kTimeout));
  const Shape shape{64, 64};
  SimulatorOptions sim;
  sim.shape = shape;
  sim.dose_counts_per_px = 4.0;
  Simulator microscope(sim, 3);
  SeriesStart start;
  start.series = SeriesId::Int(5);
  start.shape = shape;
  start.channels = {"HAADF", "ABF"};
  live.sender.SendSeriesStart(start);
  auto send = [&](frame_id_t index, const std::vector<std::string>& channels, int parts) {
    const Frame frame = microscope.NoisyFrame(static_cast<int>(index));
    FrameMessage header = testing::FrameHeaderFor(start.series, index, shape);
    header.channels = channels;
    std::vector<std::string> message{EncodeFrameHeader(header)};
    for (int p = 0; p < parts; ++p) message.push_back(Bytes(frame));
    live.sender.SendRaw(message);
  };
  send(0, {"HAADF", "ABF"}, 2);
  send(1, {"HAADF"}, 1);         // channel_change
  send(1, {}, 1);                // channel_change
  send(1, {"ABF", "HAADF"}, 2);  // channel_change: another order
  send(1, {"HAADF", "ABF"}, 1);  // bad_parts
  send(1, {"HAADF", "HAADF"}, 2);  // bad_channels
  send(1, {"HAADF", "ABF"}, 2);
  live.sender.SendRaw({Msgpack(Json{{"htype", "series_start"}, {"series", 6}, {"shape", {8, 8}},
                                    {"dtype", "uint8"}, {"channels", {"A"}},
                                    {"register_channel", "B"}})});  // unknown_channel
  live.sender.SendSeriesEnd(SeriesEnd{start.series, 2});
  std::map<std::string, int> codes;
  Json end;
  while (end.is_null()) {
    auto m = live.subscriber.Receive(kTimeout);
    REQUIRE(m);
    if (m->topic == "event") ++codes[m->header["code"].get<std::string>()];
    if (m->topic == "event" && m->header["code"] == "series_started") {
      CHECK(m->header["message"].get<std::string>().find("channels HAADF, ABF registered on HAADF") !=
            std::string::npos);
    }
    if (m->topic == "series_end") end = m->header;
  }
  CHECK(end["n_frames"] == 2);
  CHECK(codes["channel_change"] == 3);
  CHECK(codes["bad_parts"] == 1);
  CHECK(codes["bad_channels"] == 1);
  CHECK(codes["unknown_channel"] == 1);
  const auto status = live.control.Request("status", kTimeout);
  REQUIRE(status);
  CHECK((*status)["errors_by_code"]["channel_change"] == 3);
  CHECK((*status)["frames_dropped"] == 3);
  CHECK((*status)["bad_messages"] == 3);
  CHECK(std::filesystem::exists(out + "/5/average_ABF_full.tif"));
}

TEST_CASE("an implicit start takes the frame's channels; a one-name list is a named channel",
          "[stream][integration][channels]") {
  const std::string out = testing::ScratchDir("daemon_channels_implicit");
  LiveDaemon live(out);
  REQUIRE(SyncSubscriber(live.subscriber, live.control, kTimeout));
  REQUIRE(live.sender.WaitForPeer(kTimeout));
  SimulatorOptions sim;
  sim.shape = Shape{64, 64};
  sim.dose_counts_per_px = 4.0;
  Simulator microscope(sim, 9);
  auto send = [&](const SeriesId& series, frame_id_t index, const std::vector<std::string>& channels) {
    const Frame frame = microscope.NoisyFrame(static_cast<int>(index));
    FrameMessage header = testing::FrameHeaderFor(series, index, sim.shape);
    header.channels = channels;
    std::vector<std::string> message{EncodeFrameHeader(header)};
    for (std::size_t c = 0; c < channels.size(); ++c) message.push_back(Bytes(frame));
    live.sender.SendRaw(message);
  };
  for (frame_id_t i = 0; i < 3; ++i) send(SeriesId::Str("implicit"), i, {"DF", "BF"});
  live.sender.SendSeriesEnd(SeriesEnd{SeriesId::Str("implicit"), 3});
  SeriesStart start;
  start.series = SeriesId::Str("one");
  start.shape = sim.shape;
  start.channels = {"X"};
  live.sender.SendSeriesStart(start);
  for (frame_id_t i = 0; i < 3; ++i) send(start.series, i, {"X"});
  live.sender.SendSeriesEnd(SeriesEnd{start.series, 3});
  std::set<std::string> average_channels;
  int ends = 0;
  while (ends < 2) {
    auto m = live.subscriber.Receive(kTimeout);
    REQUIRE(m);
    if (m->topic == "average") average_channels.insert(m->header.value("channel", std::string("?")));
    if (m->topic == "series_end") {
      CHECK(m->header["n_frames"] == 3);
      ++ends;
    }
  }
  CHECK(average_channels == std::set<std::string>{"BF", "DF", "X"});
  const Json report = Json::parse(std::ifstream(out + "/implicit/report.json"));
  CHECK(report["channels"]["register_channel"] == "DF");
  CHECK(std::filesystem::exists(out + "/implicit/average_BF_full.tif"));
  CHECK(std::filesystem::exists(out + "/implicit/frames_BF.tif"));
  CHECK(std::filesystem::exists(out + "/one/average_X_full.tif"));
  CHECK_FALSE(std::filesystem::exists(out + "/one/frames_X.tif"));  // the registered one is frames.tif
}

}  // namespace
}  // namespace livealign
