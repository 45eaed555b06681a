#include "core/lattice_offsets.hpp"

#include <cmath>

#include <catch2/catch.hpp>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

const Lattice kLattice = Lattice::Reduced(Shift{16, 0}, Shift{0, 16});
const HopTest kHops(kLattice, HopTolerances{});

std::vector<Shift> SmoothDrift(int n) {
  std::vector<Shift> s(n);
  for (int k = 0; k < n; ++k) s[k] = Shift{0.4 * k, -0.25 * k + 0.002 * k * k};
  return s;
}

TEST_CASE("a run of hopped frames is moved back by temporal continuity", "[core][lattice_offsets]") {
  const std::vector<Shift> truth = SmoothDrift(30);
  std::vector<Shift> solved = truth;
  for (int k = 10; k < 15; ++k) solved[k] += Shift{0, -16};  // a hopped run
  solved[22] += Shift{16, 16};                                // a single hopped frame
  const LatticeOffsetReport report =
      ResolveLatticeOffsets(solved, std::vector<bool>(30, false), kHops, {});
  CHECK(report.frames_moved == 6);
  CHECK(report.jumps.empty());
  for (int k = 0; k < 30; ++k) {
    CAPTURE(k);
    REQUIRE_THAT((solved[k] + report.offsets[k] - truth[k]).Norm(), WithinAbs(0, 1e-9));
  }
}

TEST_CASE("frames lost on the way are gaps in time, not hops or jumps", "[core][lattice_offsets]") {
  // 0.4 px per 0.1 s frame along x; runs of 40 frames (16 px of drift: one
  // lattice vector) lost twice, as an overloaded SUB socket loses them.
  std::vector<double> times;
  for (int wire = 0; wire < 130; ++wire) {
    if ((wire >= 10 && wire < 50) || (wire >= 60 && wire < 100)) continue;
    times.push_back(0.1 * wire);
  }
  const int n = static_cast<int>(times.size());
  std::vector<Shift> truth(n);
  for (int k = 0; k < n; ++k) truth[k] = Shift{4.0 * times[k], -1.0 * times[k]};
  const std::vector<bool> unflagged(n, false);
  const LatticeOffsetReport in_time = ResolveLatticeOffsets(truth, unflagged, kHops, {}, {}, times);
  CHECK(in_time.frames_moved == 0);
  CHECK(in_time.jumps.empty());
  // Per frame index, the same series seems to hop or jump at each gap.
  const LatticeOffsetReport per_index = ResolveLatticeOffsets(truth, unflagged, kHops, {});
  CHECK(per_index.frames_moved + static_cast<int>(per_index.jumps.size()) > 0);
  CHECK_THROWS_AS(ResolveLatticeOffsets(truth, unflagged, kHops, {}, {}, std::vector<double>(3)),
                  std::invalid_argument);
}

// 0.1 s frames; frames 20..59 lost; the drift's velocity changes from
// `before` to `after` (px/s) during the gap, and `extra_after_gap` is a stage
// jump in it.
struct GapSeries {
  std::vector<double> times;
  std::vector<Shift> truth;
};

GapSeries DriftWithGap(Shift before, Shift after, Shift extra_after_gap) {
  GapSeries g;
  for (int wire = 0; wire < 100; ++wire) {
    if (wire >= 20 && wire < 60) continue;
    const double t = 0.1 * wire, t_gap = 0.1 * 19;
    g.times.push_back(t);
    g.truth.push_back(t <= t_gap ? before * t : before * t_gap + after * (t - t_gap) + extra_after_gap);
  }
  return g;
}

TEST_CASE("after a long gap a frame a lattice vector off is put back on the clearly nearest site",
          "[core][lattice_offsets]") {
  // The velocity wanders during the gap: the first frame after it is ~5 px
  // from the constant-velocity prediction, more than the continuity
  // tolerance (4 px), clearly nearer one lattice site than any other.
  const GapSeries g = DriftWithGap(Shift{2.5, -1.8}, Shift{3.7, -2.1}, Shift{});
  const int n = static_cast<int>(g.times.size());
  // The solver put every frame after the gap a lattice vector off.
  std::vector<Shift> solved = g.truth;
  for (int k = 20; k < n; ++k) solved[k] += Shift{-16, 16};
  const LatticeOffsetReport report =
      ResolveLatticeOffsets(solved, std::vector<bool>(n, false), kHops, {}, {}, g.times);
  CHECK(report.jumps.empty());
  for (int k = 0; k < n; ++k) {
    CAPTURE(k);
    REQUIRE_THAT((solved[k] + report.offsets[k] - g.truth[k]).Norm(), WithinAbs(0, 1e-9));
  }
}

TEST_CASE("after a long gap a deviation halfway between lattice sites is a stage jump, not guessed",
          "[core][lattice_offsets]") {
  // A real jump of 1.5 spacings during the gap: modulo the lattice the solver
  // sees 0.5 spacings, equally far from two sites.
  const GapSeries g = DriftWithGap(Shift{2.5, -1.8}, Shift{2.5, -1.8}, Shift{24, 0});
  const int n = static_cast<int>(g.times.size());
  std::vector<Shift> solved = g.truth;
  for (int k = 20; k < n; ++k) solved[k] += Shift{-16, 0};
  const LatticeOffsetReport report =
      ResolveLatticeOffsets(solved, std::vector<bool>(n, false), kHops, {}, {}, g.times);
  REQUIRE(report.jumps.size() == 1);
  CHECK(report.jumps[0].frame == 20);
  CHECK_FALSE(report.jumps[0].lattice_offset_observable);
}

TEST_CASE("a real stage jump without coarse evidence is reported as not observable",
          "[core][lattice_offsets]") {
  std::vector<Shift> truth = SmoothDrift(20);
  for (int k = 12; k < 20; ++k) truth[k] += Shift{24, 0};  // 1.5 lattice spacings
  // The pairwise solution only knows the jump modulo the lattice.
  std::vector<Shift> solved = truth;
  for (int k = 12; k < 20; ++k) solved[k] += Shift{-16, 0};
  const LatticeOffsetReport report =
      ResolveLatticeOffsets(solved, std::vector<bool>(20, false), kHops, {});
  REQUIRE(report.jumps.size() == 1);
  CHECK(report.jumps[0].frame == 12);
  CHECK_FALSE(report.jumps[0].lattice_offset_observable);
}

TEST_CASE("a jump within the hop tolerance but far beyond the series' steadiness is a stage jump",
          "[core][lattice_offsets]") {
  // Drift with 0.1 px of noise a frame; after frame 30 the solution is 2.5 px
  // off its prediction (within the hop test's 4 px, so drift by the lattice's
  // measure): what a jump leaves when a lattice (or sublattice) translate of
  // the jumped peak lies inside the pair search's window.
  std::vector<Shift> solved = SmoothDrift(50);
  for (int k = 0; k < 50; ++k) solved[k] += Shift{0.1 * std::sin(1.7 * k), 0.1 * std::cos(2.3 * k)};
  const LatticeOffsetReport steady = ResolveLatticeOffsets(solved, std::vector<bool>(50, false), kHops, {});
  CHECK(steady.jumps.empty());
  for (int k = 30; k < 50; ++k) solved[k] += Shift{2.0, 1.5};
  const LatticeOffsetReport report = ResolveLatticeOffsets(solved, std::vector<bool>(50, false), kHops, {});
  REQUIRE(report.jumps.size() == 1);
  CHECK(report.jumps[0].frame == 30);
  CHECK_FALSE(report.jumps[0].lattice_offset_observable);
  CHECK(report.frames_moved == 0);
  // Fewer frames than the steadiness needs before it (8): drift as before.
  std::vector<Shift> early = SmoothDrift(20);
  for (int k = 6; k < 20; ++k) early[k] += Shift{2.0, 1.5};
  CHECK(ResolveLatticeOffsets(early, std::vector<bool>(20, false), kHops, {}).jumps.empty());
}

TEST_CASE("clear coarse evidence pins the lattice offset across a stage jump",
          "[core][lattice_offsets]") {
  std::vector<Shift> truth = SmoothDrift(20);
  for (int k = 12; k < 20; ++k) truth[k] += Shift{24, 0};
  std::vector<Shift> solved = truth;
  for (int k = 12; k < 20; ++k) solved[k] += Shift{-16, 0};
  std::vector<CoarsePairEvidence> coarse;
  for (int k = 1; k < 20; ++k) {
    for (int i = std::max(0, k - 4); i < k; ++i) {
      // Coarse shifts are imprecise (about a pixel) but hop-free.
      const double noise = ((i * 7 + k * 3) % 5 - 2) * 0.4;
      coarse.push_back({i, k, truth[k] - truth[i] + Shift{noise, -noise}, 0.8});
    }
  }
  const LatticeOffsetReport report =
      ResolveLatticeOffsets(solved, std::vector<bool>(20, false), kHops, coarse);
  REQUIRE(report.jumps.size() == 1);
  CHECK(report.jumps[0].lattice_offset_observable);
  CHECK(report.frames_decided_by_coarse > 0);
  for (int k = 0; k < 20; ++k) {
    CAPTURE(k);
    REQUIRE_THAT((solved[k] + report.offsets[k] - truth[k]).Norm(), WithinAbs(0, 1e-9));
  }
}

// n frames drifting smoothly with a jump of 1.5 lattice spacings at frame
// `at`, and the pairwise solution, which knows it only modulo the lattice.
struct JumpSeries {
  std::vector<Shift> truth, solved;
};
JumpSeries JumpOfOneAndAHalfCells(int n, int at) {
  JumpSeries series{SmoothDrift(n), {}};
  for (int k = at; k < n; ++k) series.truth[k] += Shift{24, 0};
  series.solved = series.truth;
  for (int k = at; k < n; ++k) series.solved[k] += Shift{-16, 0};
  return series;
}

// A stand-in for the run correlation (Correlator::CoarseRunCorrelation): the
// broad peak of smooth non-periodic content, centred where the second run
// truly lies against the first (`truth`), of width `width_px`.
CoarseRunScore BroadContentScore(const std::vector<Shift>& truth, double width_px,
                                 int* calls = nullptr) {
  return [truth, width_px, calls](const CoarseRunQuery& q) {
    if (calls != nullptr) ++*calls;
    Shift first, second, first_true, second_true;
    for (std::size_t m = 0; m < q.first.size(); ++m) {
      first += q.first_shifts[m] * (1.0 / q.first.size());
      first_true += truth[q.first[m]] * (1.0 / q.first.size());
    }
    for (std::size_t m = 0; m < q.second.size(); ++m) {
      second += q.second_shifts[m] * (1.0 / q.second.size());
      second_true += truth[q.second[m]] * (1.0 / q.second.size());
    }
    std::vector<double> heights;
    for (const Shift& v : q.offsets) {
      const Shift error = (second + v - first) - (second_true - first_true);
      heights.push_back(std::exp(-error.Norm() * error.Norm() / (2 * width_px * width_px)));
    }
    return heights;
  };
}

TEST_CASE("without clear coarse pairs the run correlation pins the lattice offset across a stage jump",
          "[core][lattice_offsets]") {
  const auto [truth, solved] = JumpOfOneAndAHalfCells(40, 20);
  int calls = 0;
  const LatticeOffsetReport report = ResolveLatticeOffsets(
      solved, std::vector<bool>(40, false), kHops, {}, {}, {}, BroadContentScore(truth, 20.0, &calls));
  REQUIRE(report.jumps.size() == 1);
  CHECK(report.jumps[0].frame == 20);
  CHECK(report.jumps[0].lattice_offset_observable);
  // 20 frames after the jump: the largest power of two up to them.
  CHECK(report.jumps[0].run_frames_after == 16);
  CHECK_THAT(report.jumps[0].run_height, WithinAbs(1.0, 1e-6));
  CHECK_THAT(report.jumps[0].jump_px.x, WithinAbs(24, 1.0));
  // The runs, then each of their halves.
  CHECK(calls == 3);
  for (int k = 0; k < 40; ++k) {
    CAPTURE(k);
    REQUIRE_THAT((solved[k] + report.offsets[k] - truth[k]).Norm(), WithinAbs(0, 1e-9));
  }
}

TEST_CASE("a run correlation with no clear best vector, or halves that disagree, decides nothing",
          "[core][lattice_offsets]") {
  const auto [truth, solved] = JumpOfOneAndAHalfCells(40, 20);
  const std::vector<bool> flagged(40, false);
  SECTION("content too broad to tell neighbouring translates apart") {
    // Width 200 px: the right vector leads its neighbours 16 px away by
    // 1 - exp(-16^2 / (2 200^2)) = 0.003, below min_run_margin.
    const LatticeOffsetReport report =
        ResolveLatticeOffsets(solved, flagged, kHops, {}, {}, {}, BroadContentScore(truth, 200.0));
    REQUIRE(report.jumps.size() == 1);
    CHECK_FALSE(report.jumps[0].lattice_offset_observable);
    CHECK(report.frames_moved == 0);
  }
  SECTION("the halves pick another vector than the whole runs") {
    const CoarseRunScore whole = BroadContentScore(truth, 20.0);
    std::vector<Shift> elsewhere = truth;  // where the halves put the second run
    for (int k = 20; k < 40; ++k) elsewhere[k] += Shift{0, 16};
    const CoarseRunScore halves = BroadContentScore(elsewhere, 20.0);
    const CoarseRunScore score = [&](const CoarseRunQuery& q) {
      return q.second.size() == 16 ? whole(q) : halves(q);
    };
    const LatticeOffsetReport report = ResolveLatticeOffsets(solved, flagged, kHops, {}, {}, {}, score);
    REQUIRE(report.jumps.size() == 1);
    CHECK_FALSE(report.jumps[0].lattice_offset_observable);
    CHECK(report.frames_moved == 0);
  }
  SECTION("a scorer that cannot score") {
    const CoarseRunScore empty = [](const CoarseRunQuery&) { return std::vector<double>{}; };
    const LatticeOffsetReport report = ResolveLatticeOffsets(solved, flagged, kHops, {}, {}, {}, empty);
    REQUIRE(report.jumps.size() == 1);
    CHECK_FALSE(report.jumps[0].lattice_offset_observable);
  }
}

TEST_CASE("weak coarse peaks are ignored", "[core][lattice_offsets]") {
  const std::vector<Shift> truth = SmoothDrift(10);
  std::vector<CoarsePairEvidence> coarse;
  for (int k = 1; k < 10; ++k) coarse.push_back({k - 1, k, Shift{16, 0}, 0.2});  // wrong but weak
  const LatticeOffsetReport report =
      ResolveLatticeOffsets(truth, std::vector<bool>(10, false), kHops, coarse);
  CHECK(report.frames_moved == 0);
  CHECK(report.frames_decided_by_coarse == 0);
}

TEST_CASE("clear coarse evidence for a wrong lattice vector does not override smooth drift",
          "[core][lattice_offsets]") {
  // The solver is right everywhere; on frame 15 two clear coarse pairs agree
  // on a lattice vector off. Continuity says the frame is on smooth drift.
  const std::vector<Shift> truth = SmoothDrift(30);
  std::vector<CoarsePairEvidence> coarse;
  for (int k = 1; k < 30; ++k) {
    for (int i = std::max(0, k - 3); i < k; ++i) {
      const Shift wrong = (k == 15) ? Shift{16, 0} : Shift{};
      coarse.push_back({i, k, truth[k] - truth[i] + wrong, 0.8});
    }
  }
  const LatticeOffsetReport report =
      ResolveLatticeOffsets(truth, std::vector<bool>(30, false), kHops, coarse);
  CHECK(report.frames_moved == 0);
  CHECK(report.jumps.empty());
  // The evidence was clear on every other frame: the offset is observable.
  CHECK(report.frames_decided_by_coarse >= 28);
  for (int k = 0; k < 30; ++k) {
    CAPTURE(k);
    REQUIRE(report.offsets[k].Norm() == 0);
  }
}

TEST_CASE("flagged frames where a hopped run begins are placed near their neighbours, not a lattice vector off",
          "[core][lattice_offsets]") {
  // Frames 12.. hopped in the solver's coordinates; 10 and 11 are flagged,
  // and the solver interpolated them between frame 9 and the hopped 12.
  const int n = 30;
  const std::vector<Shift> truth = SmoothDrift(n);
  std::vector<Shift> solved = truth;
  for (int k = 12; k < n; ++k) solved[k] += Shift{0, -16};
  std::vector<bool> flagged(n, false);
  for (int k : {10, 11}) {
    flagged[k] = true;
    const double t = (k - 9) / 3.0;
    solved[k] = solved[9] * (1 - t) + solved[12] * t;
  }
  const LatticeOffsetReport report = ResolveLatticeOffsets(solved, flagged, kHops, {});
  CHECK(report.jumps.empty());
  for (int k = 0; k < n; ++k) {
    CAPTURE(k);
    const double error = (solved[k] + report.offsets[k] - truth[k]).Norm();
    if (flagged[k]) {
      CHECK(error < 0.5 * 16);
    } else {
      CHECK_THAT(error, WithinAbs(0, 1e-9));
    }
  }
}

TEST_CASE("mismatched inputs are refused", "[core][lattice_offsets]") {
  CHECK_THROWS_AS(ResolveLatticeOffsets(SmoothDrift(3), std::vector<bool>(2), kHops, {}),
                  std::invalid_argument);
  CHECK_THROWS_AS(ResolveLatticeOffsets(SmoothDrift(3), std::vector<bool>(3), kHops,
                                        {CoarsePairEvidence{2, 1, Shift{}, 0.8}}),
                  std::invalid_argument);
}

}  // namespace
}  // namespace livealign
