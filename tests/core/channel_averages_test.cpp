#include "core/channel_averages.hpp"

#include <catch2/catch.hpp>

#include <cmath>

#include "core/registration_engine.hpp"
#include "core/simulator.hpp"

namespace livealign {
namespace {

double MaxAbsDiff(FrameView a, FrameView b) {
  double worst = 0;
  for (int r = 0; r < a.rows(); ++r) {
    for (int c = 0; c < a.cols(); ++c) {
      worst = std::max(worst, double(std::fabs(a.at(r, c) - b.at(r, c))));
    }
  }
  return worst;
}

// A channel that is `offset - frame` pixel by pixel: inverted contrast.
Frame Inverted(FrameView frame, float offset) {
  Frame out = Frame(frame.shape());
  for (int r = 0; r < frame.rows(); ++r) {
    for (int c = 0; c < frame.cols(); ++c) out.at(r, c) = offset - frame.at(r, c);
  }
  return out;
}

SimulatorOptions SmallSeries() {
  SimulatorOptions options;
  options.shape = {128, 128};
  options.dose_counts_per_px = 2.0;
  options.initial_velocity_px_per_frame = {0.6, -0.4};
  return options;
}

TEST_CASE("channels follow the engine's shifts to the exact average at the final shifts",
          "[core][channel_averages]") {
  SimulatedSeries series = Simulate(SmallSeries(), 12, 5);
  RegistrationEngine engine(EngineOptions{}, series.frames[0].shape());
  MemoryFrameStore store;
  ChannelAverages channels({"copy", "inverted"}, ChannelAverages::Options{}, &store);
  std::vector<Frame> originals;
  int live_resamples = 0;
  for (Frame& frame : series.frames) {
    originals.push_back(frame.Clone());
    std::vector<Frame> others;
    others.push_back(frame.Clone());
    others.push_back(Inverted(frame, 50.0f));
    const RegistrationResult live = engine.AddFrame(std::move(frame));
    channels.AddFrames(std::move(others), live.frames.back());
    live_resamples += channels.Follow(live.frames, /*final=*/false);
  }
  // Live, at most one re-resampling per update, as the engine.
  CHECK(live_resamples <= 12);
  const RegistrationResult result = engine.Finish();
  channels.Follow(result.frames, /*final=*/true);
  REQUIRE(channels.num_frames() == 12);
  // What `apply` computes: a fresh average at the final shifts.
  ShiftedAverager fresh;
  for (std::size_t i = 0; i < originals.size(); ++i) {
    const FrameState& s = result.frames[i];
    fresh.AddFrame(std::move(originals[i]), s.shift, !s.flagged);
  }
  const AverageImage reference = fresh.Average();
  const AverageImage copy = channels.Average("copy");
  REQUIRE(copy.valid == reference.valid);
  CHECK(copy.num_included == reference.num_included);
  CHECK(MaxAbsDiff(copy.full, reference.full) < 1e-5);
  // And close to the engine's own average (which may lag by its tolerance).
  CHECK(MaxAbsDiff(copy.common, engine.Average().common) < 0.1);
  // Linear in the pixels: the inverted channel's average is 50 - the average
  // wherever every frame covers the pixel.
  const AverageImage inverted = channels.Average("inverted");
  CHECK(MaxAbsDiff(inverted.common, Inverted(reference.common, 50.0f)) < 1e-4);
  // Every frame of every channel is in the store under its channel name.
  CHECK(store.Count("copy") == 12);
  CHECK(store.Count("inverted") == 12);
  CHECK(MaxAbsDiff(store.Get(3, "inverted"), Inverted(store.Get(3, "copy"), 50.0f)) < 1e-5);
  CHECK_THROWS_AS(channels.Average("HAADF"), std::out_of_range);
}

TEST_CASE("channel frames of the wrong count or shape change nothing", "[core][channel_averages]") {
  ChannelAverages channels({"ABF", "DF"});
  FrameState state;
  std::vector<Frame> one;
  one.emplace_back(Shape{8, 8});
  CHECK_THROWS_AS(channels.AddFrames(std::move(one), state), std::invalid_argument);
  std::vector<Frame> mixed;
  mixed.emplace_back(Shape{8, 8});
  mixed.emplace_back(Shape{8, 9});
  CHECK_THROWS_AS(channels.AddFrames(std::move(mixed), state), std::invalid_argument);
  CHECK(channels.num_frames() == 0);
  CHECK_THROWS_AS(ChannelAverages({"ABF", "ABF"}), std::invalid_argument);
  CHECK_THROWS_AS(ChannelAverages({""}), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
