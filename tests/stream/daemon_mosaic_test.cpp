// The live `mosaic` message (docs/protocol.md): the real daemon and engine on
// a series whose drift carries the view beyond frame 0's window, read by a
// ZeroMQ subscriber on 127.0.0.1 and checked against the files it writes.
#include "stream/daemon.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "adapters/tiff_io.hpp"
#include "core/simulator.hpp"
#include "stream/stream_clients.hpp"
#include "tests/stream/stream_test_util.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using testing::kTimeout;
using Json = nlohmann::json;

std::vector<int> RectOf(const Json& value) { return value.get<std::vector<int>>(); }

TEST_CASE("the daemon publishes the mosaic of a drift beyond the frame, binned to its bound",
          "[stream][integration][daemon_mosaic]") {
  const std::string out = testing::ScratchDir("daemon_mosaic");
  DaemonOptions options = testing::LocalDaemonOptions("pull", out);
  options.max_queue_wait_s = 0;
  options.mosaic_max_px = 64;
  Daemon daemon(options);
  daemon.Start();
  ResultSubscriber subscriber(daemon.publish_endpoint(), {"mosaic", "average", "series_end", "event"});
  ControlClient control(daemon.control_endpoint());
  REQUIRE(SyncSubscriber(subscriber, control, kTimeout));
  FrameSender sender(daemon.source_endpoint(), "push", false);
  REQUIRE(sender.WaitForPeer(kTimeout));

  // 40 frames of 96^2 drifting 3 px a frame in x: the last lies wholly
  // beyond frame 0's window.
  SimulatorOptions sim;
  sim.shape = Shape{96, 96};
  sim.dose_counts_per_px = 2.0;
  sim.initial_velocity_px_per_frame = Shift{3.0, -0.5};
  sim.random_acceleration_px = 0.0;
  constexpr int kFrames = 40;
  const SimulatedSeries series = Simulate(sim, kFrames, 6);
  const SeriesId id = SeriesId::Str("drift");
  SeriesStart start;
  start.series = id;
  start.shape = sim.shape;
  start.dtype = PixelType::kFloat32;
  start.expected_frames = kFrames;
  sender.SendSeriesStart(start);
  for (int i = 0; i < kFrames; ++i) {
    const Frame& frame = series.frames[i];
    sender.SendFrame(testing::FrameHeaderFor(id, i, sim.shape), frame.data(),
                     frame.pixels().size() * sizeof(float));
  }
  sender.SendSeriesEnd(SeriesEnd{id, kFrames});

  std::optional<ReceivedMessage> last_mosaic;
  int mosaics = 0, averages = 0;
  bool ended = false;
  while (!ended) {
    auto m = subscriber.Receive(kTimeout);
    REQUIRE(m);
    if (m->topic == "mosaic") ++mosaics, last_mosaic = std::move(m);
    else if (m->topic == "average") ++averages;
    else if (m->topic == "series_end") ended = true;
  }
  // One mosaic with every average (the image is not empty from frame 0 on).
  CHECK(mosaics == averages);
  REQUIRE(last_mosaic);
  const Json& h = last_mosaic->header;
  INFO(h.dump().substr(0, 400));
  CHECK(h["n_frames"] == kFrames);
  CHECK(h["n_included"].get<int>() >= kFrames - 2);

  // The extent is the one report.json gives for average_mosaic.tif, and it
  // spans the drift: 96 + 39 * 3 columns less the resampling margins and
  // any flagged frame, more than two frame widths, so binned to fit 64.
  const Json report = Json::parse(std::ifstream(out + "/drift/report.json"));
  const std::vector<int> extent = RectOf(h["extent"]);
  CHECK(extent == RectOf(report["average"]["mosaic"]));
  const int rows = extent[1] - extent[0], cols = extent[3] - extent[2];
  REQUIRE(cols > 2 * 96);
  const int bin = h["bin"];
  CHECK(bin == (std::max(rows, cols) + 63) / 64);
  const int out_rows = (rows + bin - 1) / bin, out_cols = (cols + bin - 1) / bin;
  REQUIRE(h["shape"] == Json({out_rows, out_cols}));
  REQUIRE(last_mosaic->data.size() == static_cast<std::size_t>(out_rows) * out_cols * sizeof(float));
  const std::vector<std::uint8_t>& count_bytes = h["counts"].get_binary();
  REQUIRE(count_bytes.size() == static_cast<std::size_t>(out_rows) * out_cols * sizeof(std::uint16_t));
  std::vector<float> mean(static_cast<std::size_t>(out_rows) * out_cols);
  std::memcpy(mean.data(), last_mosaic->data.data(), last_mosaic->data.size());
  std::vector<std::uint16_t> fewest(mean.size());
  std::memcpy(fewest.data(), count_bytes.data(), count_bytes.size());

  // The message is the written mosaic binned: each pixel the count-weighted
  // mean of its bin, and its count the bin's fewest.
  const Frame mosaic = std::move(ReadTiff(out + "/drift/average_mosaic.tif").frames.at(0));
  const Frame counts = std::move(ReadTiff(out + "/drift/average_mosaic_counts.tif").frames.at(0));
  REQUIRE(mosaic.shape() == (Shape{rows, cols}));
  double worst = 0;
  int far_covered = 0;
  for (int r = 0; r < out_rows; ++r) {
    for (int c = 0; c < out_cols; ++c) {
      double weighted = 0, weight = 0;
      float least = 1e9f;
      for (int mr = r * bin; mr < std::min(rows, (r + 1) * bin); ++mr)
        for (int mc = c * bin; mc < std::min(cols, (c + 1) * bin); ++mc) {
          weighted += double(mosaic.at(mr, mc)) * counts.at(mr, mc);
          weight += counts.at(mr, mc);
          least = std::min(least, counts.at(mr, mc));
        }
      const std::size_t i = static_cast<std::size_t>(r) * out_cols + c;
      worst = std::max(worst, std::abs((weight > 0 ? weighted / weight : 0.0) - mean[i]));
      REQUIRE(fewest[i] == static_cast<std::uint16_t>(least));
      if (c * bin + extent[2] + bin <= 0 && fewest[i] > 0) ++far_covered;  // wholly left of frame 0
    }
  }
  CHECK(worst < 1e-4);
  // Beyond frame 0's window the preview is not empty: that is what the
  // mosaic is for.
  CHECK(far_covered > out_rows * 10);
  // Frame 0's window, in preview pixels, is the rightmost 96 columns.
  const std::vector<int> window = RectOf(h["window"]);
  CHECK(window[3] == out_cols);
  CHECK(window[2] == (0 - extent[2]) / bin);
  const std::vector<int> valid = RectOf(h["valid"]);
  CHECK(valid[1] > valid[0]);
  CHECK(valid[3] > valid[2]);
}

}  // namespace
}  // namespace livealign
