#include "core/lattice_tracker.hpp"

#include <catch2/catch.hpp>

#include "core/simulator.hpp"

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

SolverReport Solved(const std::vector<Shift>& shifts) {
  SolverReport r;
  r.shifts = shifts;
  r.flagged.assign(shifts.size(), false);
  return r;
}

// A tracker whose lattice was estimated from one simulated 128^2 frame.
void EstimateFromOneFrame(LatticeTracker* tracker) {
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  Simulator microscope(sim, 2);
  const Frame frame = microscope.NextFrame();
  REQUIRE(tracker->Estimate(frame.view(), false, frame.view()));
}

TEST_CASE("the lattice is estimated from the first raw frames, then on a growing schedule",
          "[core][lattice_tracker]") {
  LatticeTracker tracker(/*enabled=*/true);
  for (int k = 0; k < 8; ++k) CHECK(tracker.EstimateDue(k));  // no lattice yet
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  Simulator microscope(sim, 2);
  const Frame frame = microscope.NextFrame();
  REQUIRE(tracker.Estimate(frame.view(), /*average_usable=*/false, frame.view()));
  REQUIRE(tracker.lattice().has_value());
  CHECK_THAT(tracker.lattice()->ShortestSpacing(), WithinAbs(sim.lattice_spacing_px, 0.5));
  // The hop test the tracker hands the solver is the found lattice with the
  // tracker's tolerances.
  REQUIRE(tracker.hop_test().has_value());
  CHECK_THAT(tracker.hop_test()->hop_px(),
             WithinAbs(tracker.tolerances().hop * tracker.lattice()->ShortestSpacing(), 1e-9));
  CHECK_FALSE(tracker.reciprocal_peaks().empty());
  tracker.MarkEstimated(0);
  CHECK_FALSE(tracker.EstimateDue(1));  // found: next at 8 frames
  CHECK(tracker.EstimateDue(7));
  tracker.MarkEstimated(7);
  CHECK_FALSE(tracker.EstimateDue(30));
  CHECK(tracker.EstimateDue(31));  // fourfold growth
}

TEST_CASE("disabled, the tracker never finds a lattice and every offset is zero",
          "[core][lattice_tracker]") {
  LatticeTracker tracker(/*enabled=*/false);
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  Simulator microscope(sim, 2);
  const Frame frame = microscope.NextFrame();
  CHECK_FALSE(tracker.Estimate(frame.view(), false, frame.view()));
  tracker.Resolve(Solved({Shift{}, Shift{0, 16}, Shift{0.4, 0}}), {});
  for (int k = 0; k < 3; ++k) CHECK(tracker.offset(k) == Shift{});
  CHECK(tracker.offset(7) == Shift{});  // beyond the solve: zero
}

TEST_CASE("across a stage jump the run correlation is asked again only when a run doubles or moves",
          "[core][lattice_tracker]") {
  LatticeTracker tracker(true);
  EstimateFromOneFrame(&tracker);
  const Lattice lattice = *tracker.lattice();
  // A jump of 1.5 cells along a at frame 20; the solution has it modulo the lattice.
  std::vector<Shift> truth;
  for (int k = 0; k < 40; ++k) truth.push_back(Shift{0.3 * k, -0.2 * k} + (k >= 20 ? lattice.a * 1.5 : Shift{}));
  std::vector<Shift> solved = truth;
  for (int k = 20; k < 40; ++k) solved[k] = solved[k] - lattice.a;
  // Scores: the true translate 1, every other 0.5.
  int calls = 0;
  const CoarseRunScore score = [&](const CoarseRunQuery& q) {
    ++calls;
    Shift relative;
    for (std::size_t m = 0; m < q.second.size(); ++m) {
      relative += (truth[q.second[m]] - q.second_shifts[m]) * (1.0 / q.second.size());
    }
    std::vector<double> heights;
    for (const Shift& v : q.offsets) heights.push_back((v - relative).Norm() < 1 ? 1.0 : 0.5);
    return heights;
  };
  // Frames 20 .. k after the jump, as a live series adds them.
  const auto resolve_up_to = [&](int k) {
    const std::vector<Shift> head(solved.begin(), solved.begin() + k + 1);
    tracker.Resolve(Solved(head), {}, score);
  };
  resolve_up_to(20);  // 1 frame after the jump: too few to split in halves, nothing asked
  CHECK(calls == 0);
  REQUIRE(tracker.offsets().jumps.size() == 1);
  CHECK_FALSE(tracker.offsets().jumps[0].lattice_offset_observable);
  resolve_up_to(21);  // 2 frames: the runs and their two halves
  CHECK(calls == 3);
  REQUIRE(tracker.offsets().jumps.size() == 1);
  CHECK(tracker.offsets().jumps[0].lattice_offset_observable);
  CHECK_THAT((solved[21] + tracker.offset(21) - truth[21]).Norm(), WithinAbs(0, 1e-9));
  resolve_up_to(22);  // still 2 in the run's power of two: nothing asked
  CHECK(calls == 3);
  // A re-solve moving the runs apart by more than half a pixel asks again.
  for (int k = 20; k < 40; ++k) solved[k] += Shift{0.8, 0};
  for (int k = 20; k < 40; ++k) truth[k] += Shift{0.8, 0};
  resolve_up_to(22);
  CHECK(calls == 6);
  CHECK_THAT((solved[22] + tracker.offset(22) - truth[22]).Norm(), WithinAbs(0, 1e-9));
}

TEST_CASE("a hopped frame gets the offset that puts it back on smooth drift",
          "[core][lattice_tracker]") {
  LatticeTracker tracker(true);
  EstimateFromOneFrame(&tracker);
  const Lattice lattice = *tracker.lattice();
  std::vector<Shift> truth(12);
  for (int k = 0; k < 12; ++k) truth[k] = Shift{0.3 * k, -0.2 * k};
  std::vector<Shift> solved = truth;
  solved[6] += lattice.a;  // one frame a lattice vector off
  tracker.Resolve(Solved(solved), {});
  CHECK(tracker.offsets().frames_moved == 1);
  CHECK(tracker.offsets().jumps.empty());
  for (int k = 0; k < 12; ++k) {
    CAPTURE(k);
    CHECK_THAT((solved[k] + tracker.offset(k) - truth[k]).Norm(), WithinAbs(0, 1e-9));
  }
  // The published shifts are smooth: no lattice-vector spike.
  std::vector<Shift> published(12);
  for (int k = 0; k < 12; ++k) published[k] = solved[k] + tracker.offset(k);
  tracker.CheckTemporal(published, {});
  CHECK(tracker.temporal().spikes.empty());
  // A spike in the published shifts is found.
  published[6] += lattice.a;
  tracker.CheckTemporal(published, {});
  REQUIRE(tracker.temporal().spikes.size() == 1);
  CHECK(tracker.temporal().spikes[0].frame == 6);
  CHECK(tracker.temporal().spikes[0].is_lattice_vector);
}

}  // namespace
}  // namespace livealign
