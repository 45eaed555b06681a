#include "core/pair_search.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "core/correlator.hpp"
#include "core/lattice.hpp"
#include "core/simulator.hpp"
#include "core/thread_pool.hpp"

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

// `frame` moved by (dx, 0) whole pixels, cyclically.
Frame MovedCyclically(const Frame& frame, int dx) {
  Frame out(frame.shape());
  for (int r = 0; r < frame.rows(); ++r)
    for (int c = 0; c < frame.cols(); ++c) out.at(r, (c + dx) % frame.cols()) = frame.at(r, c);
  return out;
}

// Frames 0..k of a simulated perovskite series in a correlator, with their
// true shifts as the published ones, and the specimen's lattice; the new
// frame is k.
struct PredictedSearch {
  SimulatorOptions sim;
  std::vector<Frame> frames;
  std::vector<FrameState> states;
  std::vector<Shift> truth;
};

NewFramePairs SearchNewest(const PredictedSearch& s, ThreadPool& pool) {
  Correlator correlator(CorrelatorOptions{}, s.sim.shape, pool.NumWorkers());
  for (const Frame& f : s.frames) correlator.AddFrame(f.view());
  const double angle = s.sim.rotation_deg * M_PI / 180;
  const double spacing = s.sim.lattice_spacing_px;
  const Lattice lattice = Lattice::Reduced(Shift{spacing * std::cos(angle), spacing * std::sin(angle)},
                                           Shift{-spacing * std::sin(angle), spacing * std::cos(angle)});
  return SearchNewFramePairs(correlator, pool, s.sim.shape, s.states, kNoTime, lattice, PairSearchOptions{});
}

PredictedSearch Series(int k, const std::vector<StageJump>& jumps) {
  PredictedSearch s;
  s.sim.shape = Shape{128, 128};
  s.sim.dose_counts_per_px = 2.0;
  s.sim.random_acceleration_px = 0;
  s.sim.jumps = jumps;
  Simulator microscope(s.sim, 11);
  for (int i = 0; i <= k; ++i) {
    s.frames.push_back(microscope.NextFrame());
    s.truth.push_back(microscope.TrueShift(i));
  }
  s.states = Drifting(k, Shift{});
  for (int i = 0; i < k; ++i) s.states[i].shift = s.truth[i];
  return s;
}

TEST_CASE("a stage jump sends the new frame to the unrestricted search, one odd newest pair does not",
          "[core][pair_search]") {
  const int k = 9;
  ThreadPool pool(2);

  // Frame k - 1 replaced by frame k itself moved 40 px: pair (k - 1, k) peaks
  // 40 px from its prediction, far outside the window (5.6 px), and nothing
  // real lies inside it. The next two partners see frame k where it is.
  PredictedSearch odd = Series(k, {});
  odd.frames[k - 1] = MovedCyclically(odd.frames[k], 40);
  const NewFramePairs kept = SearchNewest(odd, pool);
  CHECK(kept.used_prediction);
  for (int i = 0; i < k - 1; ++i) {
    CAPTURE(i);
    REQUIRE_FALSE(kept.pairs[i].candidates.empty());
    CHECK((kept.pairs[i].candidates.front().j_from_i - (odd.truth[k] - odd.truth[i])).Norm() < 0.5);
  }

  // A jump of 0.6 lattice spacings before frame k moves every pair's peak
  // out of its window alike.
  const Shift jump{0.6 * 16 * 0.8, 0.6 * 16 * 0.6};
  PredictedSearch jumped = Series(k, {StageJump{k, jump}});
  const NewFramePairs searched = SearchNewest(jumped, pool);
  CHECK_FALSE(searched.used_prediction);
  // Its peaks are the jumped frame's, up to a lattice vector (the solver's
  // hop test and the lattice tracker decide which translate), but for the
  // odd pair that peaks on the perovskite's A-on-B translate instead.
  const double angle = jumped.sim.rotation_deg * M_PI / 180;
  const Shift a{16 * std::cos(angle), 16 * std::sin(angle)}, b{-16 * std::sin(angle), 16 * std::cos(angle)};
  int placed = 0;
  for (int i = 0; i < k; ++i) {
    REQUIRE_FALSE(searched.pairs[i].candidates.empty());
    const Shift d = searched.pairs[i].candidates.front().j_from_i - (jumped.truth[k] - jumped.truth[i]);
    // d in the basis (a, b), rounded to the nearest lattice vector.
    const double det = a.x * b.y - a.y * b.x;
    const double na = std::round((d.x * b.y - d.y * b.x) / det), nb = std::round((a.x * d.y - a.y * d.x) / det);
    placed += (d - a * na - b * nb).Norm() < 0.5 ? 1 : 0;
  }
  CHECK(placed >= k - 2);
}

}  // namespace
}  // namespace livealign
