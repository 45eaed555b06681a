#include "core/pair_search.hpp"

#include <limits>

#include <catch2/catch.hpp>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

// Every timestamp 0 (FrameState's default): no clock, so the prediction is
// per frame.
std::vector<FrameState> Drifting(int n, Shift velocity) {
  std::vector<FrameState> frames(n);
  for (int k = 0; k < n; ++k) {
    frames[k].index = k;
    frames[k].shift = velocity * k;
  }
  return frames;
}

constexpr double kNoTime = std::numeric_limits<double>::quiet_NaN();

TEST_CASE("the overlap fraction is the common area of two frames", "[core][pair_search]") {
  const Shape shape{100, 200};
  CHECK_THAT(OverlapFraction(shape, Shift{0, 0}, Shift{0, 0}), WithinAbs(1.0, 1e-12));
  CHECK_THAT(OverlapFraction(shape, Shift{0, 0}, Shift{50, 0}), WithinAbs(0.75, 1e-12));
  CHECK_THAT(OverlapFraction(shape, Shift{0, 0}, Shift{50, 50}), WithinAbs(0.375, 1e-12));
  CHECK_THAT(OverlapFraction(shape, Shift{10, 10}, Shift{10 - 300, 10}), WithinAbs(0.0, 1e-12));
}

TEST_CASE("the new frame is predicted at constant velocity once two unflagged frames give it",
          "[core][pair_search]") {
  bool known = true;
  CHECK(PredictNewShift({}, kNoTime, &known) == Shift{});
  CHECK_FALSE(known);
  std::vector<FrameState> frames = Drifting(2, Shift{1, -2});
  CHECK(PredictNewShift(frames, kNoTime, &known) == Shift{1, -2});  // too few: the last shift
  CHECK_FALSE(known);
  frames = Drifting(5, Shift{1, -2});
  CHECK(PredictNewShift(frames, kNoTime, &known) == Shift{5, -10});
  CHECK(known);
  frames[3].flagged = true;  // a flagged frame gives no velocity
  CHECK(PredictNewShift(frames, kNoTime, &known) == frames[4].shift);
  CHECK_FALSE(known);
}

TEST_CASE("with timestamps the velocity is per second, so lost frames do not mislead the prediction",
          "[core][pair_search]") {
  // 0.4 px per 0.1 s frame; frames 5..7 and 9..11 were lost on the way.
  const std::vector<double> times = {0.0, 0.1, 0.2, 0.3, 0.4, 0.8, 1.2};
  std::vector<FrameState> frames(times.size());
  for (std::size_t k = 0; k < times.size(); ++k) {
    frames[k].index = static_cast<int>(k);
    frames[k].timestamp_s = times[k];
    frames[k].shift = Shift{4.0 * times[k], -2.0 * times[k]};
  }
  bool known = false;
  // The newest step spans 4 frames; the new frame comes 2 frames later.
  Shift predicted = PredictNewShift(frames, 1.4, &known);
  CHECK(known);
  CHECK_THAT(predicted.x, WithinAbs(4.0 * 1.4, 1e-12));
  CHECK_THAT(predicted.y, WithinAbs(-2.0 * 1.4, 1e-12));
  // A timestamp that does not advance falls back to the mean step per frame
  // over the run (frames 0..6).
  const double per_frame_x = frames[6].shift.x + (frames[6].shift.x - frames[0].shift.x) / 6;
  predicted = PredictNewShift(frames, 1.2, &known);
  CHECK_THAT(predicted.x, WithinAbs(per_frame_x, 1e-12));
  frames[5].timestamp_s = kNoTime;
  predicted = PredictNewShift(frames, 1.4, &known);
  CHECK_THAT(predicted.x, WithinAbs(per_frame_x, 1e-12));
  // The baseline stops at a flagged frame: frames 3..6 here.
  frames[5].timestamp_s = 0.8;
  frames[2].flagged = true;
  predicted = PredictNewShift(frames, 1.4, &known);
  CHECK_THAT(predicted.x, WithinAbs(4.0 * 1.4, 1e-12));
  // Noise: one step's error is divided by the baseline, not multiplied by the gap.
  frames[6].shift.x += 0.1;
  predicted = PredictNewShift(frames, 1.4, &known);
  CHECK_THAT(predicted.x, WithinAbs(4.0 * 1.4 + 0.1 * (1 + 0.2 / 0.9), 1e-12));
}

TEST_CASE("the overlap gate keeps near partners and always the newest", "[core][pair_search]") {
  const Shape shape{100, 100};
  // 10 px/frame along x: frame i overlaps the new frame 10 by 1 - (10 - i) / 10.
  const std::vector<FrameState> frames = Drifting(10, Shift{10, 0});
  bool known = false;
  const Shift predicted = PredictNewShift(frames, kNoTime, &known);
  REQUIRE(predicted == Shift{100, 0});
  CHECK(OverlapPartners(shape, frames, predicted, 0.75) == std::vector<int>{8, 9});
  CHECK(OverlapPartners(shape, frames, predicted, 0.0).size() == 10u);
  // Even a frame that overlaps nothing keeps its predecessor as a partner.
  CHECK(OverlapPartners(shape, frames, Shift{1000, 0}, 0.75) == std::vector<int>{9});
}

}  // namespace
}  // namespace livealign
