#include "core/pair_search.hpp"

#include <catch2/catch.hpp>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

std::vector<FrameState> Drifting(int n, Shift velocity) {
  std::vector<FrameState> frames(n);
  for (int k = 0; k < n; ++k) {
    frames[k].index = k;
    frames[k].shift = velocity * k;
  }
  return frames;
}

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
  CHECK(PredictNewShift({}, &known) == Shift{});
  CHECK_FALSE(known);
  std::vector<FrameState> frames = Drifting(2, Shift{1, -2});
  CHECK(PredictNewShift(frames, &known) == Shift{1, -2});  // too few: the last shift
  CHECK_FALSE(known);
  frames = Drifting(5, Shift{1, -2});
  CHECK(PredictNewShift(frames, &known) == Shift{5, -10});
  CHECK(known);
  frames[3].flagged = true;  // a flagged frame gives no velocity
  CHECK(PredictNewShift(frames, &known) == frames[4].shift);
  CHECK_FALSE(known);
}

TEST_CASE("the overlap gate keeps near partners and always the newest", "[core][pair_search]") {
  const Shape shape{100, 100};
  // 10 px/frame along x: frame i overlaps the new frame 10 by 1 - (10 - i) / 10.
  const std::vector<FrameState> frames = Drifting(10, Shift{10, 0});
  bool known = false;
  const Shift predicted = PredictNewShift(frames, &known);
  REQUIRE(predicted == Shift{100, 0});
  CHECK(OverlapPartners(shape, frames, predicted, 0.75) == std::vector<int>{8, 9});
  CHECK(OverlapPartners(shape, frames, predicted, 0.0).size() == 10u);
  // Even a frame that overlaps nothing keeps its predecessor as a partner.
  CHECK(OverlapPartners(shape, frames, Shift{1000, 0}, 0.75) == std::vector<int>{9});
}

}  // namespace
}  // namespace livealign
