#include "core/consistency_solver.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <random>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

// Smooth drift with a little wobble, s_0 = (0, 0).
std::vector<Shift> TrueDrift(int n) {
  std::vector<Shift> s(static_cast<std::size_t>(n));
  for (int k = 0; k < n; ++k) {
    s[k] = Shift{0.7 * k + 3 * std::sin(0.11 * k), -0.45 * k + 2 * (std::cos(0.07 * k) - 1)};
  }
  return s;
}

PeakCandidate Candidate(Shift j_from_i, double height) { return PeakCandidate{j_from_i, height, false}; }

// Builds pair measurements of a known truth; `make` returns the candidates of
// pair (i, j) from the true j_from_i.
template <typename Make>
std::vector<std::vector<PairMeasurement>> Measure(const std::vector<Shift>& truth, Make make) {
  const int n = static_cast<int>(truth.size());
  std::vector<std::vector<PairMeasurement>> frames(static_cast<std::size_t>(n));
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < j; ++i) {
      PairMeasurement m;
      m.i = i;
      m.j = j;
      m.candidates = make(i, j, truth[j] - truth[i]);
      frames[j].push_back(m);
    }
  }
  return frames;
}

void AddAll(ConsistencySolver* solver, const std::vector<std::vector<PairMeasurement>>& frames) {
  for (const auto& pairs : frames) solver->AddFrame(pairs);
}

// Per-axis RMS error of the unflagged frames.
double RmsError(const SolverReport& report, const std::vector<Shift>& truth) {
  double sum = 0;
  int count = 0;
  for (std::size_t k = 0; k < truth.size(); ++k) {
    if (report.flagged[k]) continue;
    const Shift e = report.shifts[k] - truth[k];
    sum += e.x * e.x + e.y * e.y;
    count += 2;
  }
  return std::sqrt(sum / count);
}

// The same modulo the lattice: with a hop test the solver's shifts are
// determined only up to a lattice vector per frame (the lattice tracker pins
// those), so each frame's error is taken to its nearest lattice translate.
double RmsErrorModulo(const SolverReport& report, const std::vector<Shift>& truth, const Lattice& lattice) {
  double sum = 0;
  int count = 0;
  for (std::size_t k = 0; k < truth.size(); ++k) {
    if (report.flagged[k]) continue;
    Shift e = report.shifts[k] - truth[k];
    e -= lattice.NearestLatticeVector(e).vector;
    sum += e.x * e.x + e.y * e.y;
    count += 2;
  }
  return std::sqrt(sum / count);
}

Shift Gaussian(std::mt19937* rng, double sigma) {
  std::normal_distribution<double> g(0.0, sigma);
  return {g(*rng), g(*rng)};
}

Shift Uniform(std::mt19937* rng, double half_width) {
  std::uniform_real_distribution<double> u(-half_width, half_width);
  return {u(*rng), u(*rng)};
}

const Lattice kLattice = Lattice::Reduced({9.0, 1.5}, {-3.2, 8.6});
// The solver knows the lattice only through the hop test the lattice
// tracker gives it.
const HopTest kHops(kLattice, HopTolerances{});

Shift RandomHop(std::mt19937* rng) {
  std::uniform_int_distribution<int> d(-1, 1);
  int na = 0, nb = 0;
  while (na == 0 && nb == 0) {
    na = d(*rng);
    nb = d(*rng);
  }
  return kLattice.Vector(na, nb);
}

TEST_CASE("noise-only pairs give shifts with error near sigma sqrt(2/k)", "[core][consistency_solver]") {
  const int n = 40;
  const double sigma = 0.2;
  const auto truth = TrueDrift(n);
  std::mt19937 rng(1);
  ConsistencySolver solver({});
  AddAll(&solver, Measure(truth, [&](int, int, Shift t) {
           return std::vector<PeakCandidate>{Candidate(t + Gaussian(&rng, sigma), 1.0)};
         }));
  const SolverReport report = solver.Solve();
  CAPTURE(report.message);
  const double expected = sigma * std::sqrt(2.0 / n);
  const double rms = RmsError(report, truth);
  CAPTURE(rms, expected);
  REQUIRE(rms < 1.6 * expected);
  REQUIRE(rms > 0.4 * expected);
  REQUIRE(report.converged);
  REQUIRE(report.flagged_frames == 0);
  REQUIRE(report.rejected_pair_fraction < 0.01);
  REQUIRE_THAT(report.shifts[0].x, WithinAbs(0, 1e-12));
  REQUIRE_THAT(report.shifts[0].y, WithinAbs(0, 1e-12));
  // Residual of an edge after the fit: sigma * sqrt(2) * sqrt(1 - 2/k) per norm-RMS.
  REQUIRE_THAT(report.consistency_rms_px, WithinAbs(sigma * std::sqrt(2.0), 0.05));
  REQUIRE(report.cycles.evaluated > 0);
  REQUIRE(report.cycles.median_px < 4 * sigma);
}

TEST_CASE("random outlier pairs are rejected and do not bias the shifts", "[core][consistency_solver]") {
  const double outlier_fraction = GENERATE(0.2, 0.3);
  CAPTURE(outlier_fraction);
  const int n = 50;
  const double sigma = 0.15;
  const auto truth = TrueDrift(n);
  std::mt19937 rng(2);
  std::bernoulli_distribution is_outlier(outlier_fraction);
  std::bernoulli_distribution is_missing(0.05);
  int outliers = 0;
  ConsistencySolver solver({});
  AddAll(&solver, Measure(truth, [&](int, int, Shift t) {
           if (is_missing(rng)) return std::vector<PeakCandidate>{};
           if (is_outlier(rng)) {
             ++outliers;
             return std::vector<PeakCandidate>{Candidate(Uniform(&rng, 40), 0.3)};
           }
           return std::vector<PeakCandidate>{Candidate(t + Gaussian(&rng, sigma), 0.5)};
         }));
  const SolverReport report = solver.Solve();
  CAPTURE(report.message);
  const double expected = sigma * std::sqrt(2.0 / (n * (1 - outlier_fraction)));
  const double rms = RmsError(report, truth);
  CAPTURE(rms, expected);
  REQUIRE(report.flagged_frames == 0);
  REQUIRE(rms < 2.0 * expected);
  const double true_rejected = static_cast<double>(outliers) / report.measured_pairs;
  REQUIRE_THAT(report.rejected_pair_fraction, WithinAbs(true_rejected, 0.02));
}

TEST_CASE("lattice hops on 20% of pairs are snapped when the lattice is known", "[core][consistency_solver]") {
  const int n = 40;
  const double sigma = 0.1;
  const auto truth = TrueDrift(n);
  std::mt19937 rng(3);
  std::bernoulli_distribution is_hop(0.2);
  std::vector<std::vector<char>> hopped(n, std::vector<char>(n, 0));
  int hops = 0;
  ConsistencySolver solver({});
  solver.SetHopTest(kHops);
  AddAll(&solver, Measure(truth, [&](int i, int j, Shift t) {
           Shift measured = t + Gaussian(&rng, sigma);
           if (is_hop(rng)) {
             measured += RandomHop(&rng);
             hopped[i][j] = 1;
             ++hops;
           }
           return std::vector<PeakCandidate>{Candidate(measured, 1.0)};
         }));
  const SolverReport report = solver.Solve();
  CAPTURE(report.message, hops);
  REQUIRE(report.pairs_snapped == hops);
  REQUIRE(report.rejected_pair_fraction < 0.01);
  REQUIRE(report.flagged_frames == 0);
  REQUIRE(RmsError(report, truth) < 1.6 * sigma * std::sqrt(2.0 / n));
  for (int j = 1; j < n; ++j) {
    for (int i = 0; i < j; ++i) {
      const auto& state = solver.pair_state(i, j);
      REQUIRE(state.snapped == static_cast<bool>(hopped[i][j]));
      REQUIRE(state.residual_px < 1.0);
    }
  }
  REQUIRE(report.cycles.lattice_vector_count > 0);
  const ShiftMatrix matrices = solver.Matrices();
  REQUIRE(matrices.k == n);
  int snapped_entries = 0;
  for (int j = 1; j < n; ++j)
    for (int i = 0; i < j; ++i) snapped_entries += matrices.at(i, j) == PairStatus::kSnapped;
  REQUIRE(snapped_entries == hops);
}

TEST_CASE("a frame one lattice vector away from its earlier partners stays in one frame modulo the lattice",
          "[core][consistency_solver]") {
  // Frame 6's pairs with the earlier frames all measure it one lattice vector
  // away, those with the later frames do not. The solver does not move frames
  // by lattice vectors (the lattice tracker pins the offsets): wherever it
  // puts frame 6, on one side its pairs are corrected by the hop test and on
  // the other they fit as measured, so every pair is an inlier and the
  // solution is exact modulo the lattice.
  const int n = 12, hopped_frame = 6;
  const auto truth = TrueDrift(n);
  const Shift hop = kLattice.Vector(1, 0);
  ConsistencySolver solver({});
  solver.SetHopTest(kHops);
  AddAll(&solver, Measure(truth, [&](int, int j, Shift t) {
           if (j == hopped_frame) t += hop;
           return std::vector<PeakCandidate>{Candidate(t, 1.0)};
         }));
  const SolverReport report = solver.Solve();
  CAPTURE(report.message);
  CHECK(report.flagged_frames == 0);
  CHECK(report.inlier_pairs == report.measured_pairs);
  // Either side of the hop: 6 pairs with earlier frames, 5 with later ones.
  CHECK((report.pairs_snapped == hopped_frame || report.pairs_snapped == n - 1 - hopped_frame));
  const Shift relative = report.shifts[hopped_frame] - truth[hopped_frame];
  CAPTURE(relative.x, relative.y);
  CHECK(std::min(relative.Norm(), (relative - hop).Norm()) < 1e-6);
  for (int k = 0; k < n; ++k) {
    if (k != hopped_frame) CHECK_THAT((report.shifts[k] - truth[k]).Norm(), WithinAbs(0, 1e-6));
  }
}

TEST_CASE("hops without a lattice are fixed by re-selecting the second candidate", "[core][consistency_solver]") {
  const int n = 40;
  const double sigma = 0.1;
  const auto truth = TrueDrift(n);
  std::mt19937 rng(4);
  std::bernoulli_distribution is_hop(0.2);
  int hops = 0;
  ConsistencySolver solver({});
  AddAll(&solver, Measure(truth, [&](int, int, Shift t) {
           const Shift good = t + Gaussian(&rng, sigma);
           if (is_hop(rng)) {
             ++hops;
             return std::vector<PeakCandidate>{Candidate(good + RandomHop(&rng), 1.0),
                                               Candidate(good, 0.97),
                                               Candidate(good - RandomHop(&rng) * 2, 0.9)};
           }
           return std::vector<PeakCandidate>{Candidate(good, 1.0), Candidate(good + RandomHop(&rng), 0.95)};
         }));
  const SolverReport report = solver.Solve();
  CAPTURE(report.message, hops);
  REQUIRE(report.pairs_not_brightest == hops);
  REQUIRE(report.pairs_snapped == 0);
  REQUIRE(report.rejected_pair_fraction < 0.01);
  REQUIRE(RmsError(report, truth) < 1.6 * sigma * std::sqrt(2.0 / n));
}

TEST_CASE("a frame whose pairs are all wrong is flagged and leaves the others intact", "[core][consistency_solver]") {
  const int n = 30;
  const int bad = GENERATE(0, 17, 29);
  CAPTURE(bad);
  const double sigma = 0.1;
  const auto truth = TrueDrift(n);
  std::mt19937 rng(5);
  ConsistencySolver solver({});
  AddAll(&solver, Measure(truth, [&](int i, int j, Shift t) {
           if (i == bad || j == bad) return std::vector<PeakCandidate>{Candidate(Uniform(&rng, 30), 1.0)};
           return std::vector<PeakCandidate>{Candidate(t + Gaussian(&rng, sigma), 1.0)};
         }));
  const SolverReport report = solver.Solve();
  CAPTURE(report.message);
  REQUIRE(report.flagged[bad]);
  REQUIRE(report.flagged_frames == 1);
  // Gauge is s_0 = 0 even when frame 0 is the bad one: compare relative to
  // the first good frame then.
  const int anchor = bad == 0 ? 1 : 0;
  double worst = 0;
  for (int k = 0; k < n; ++k) {
    if (k == bad) continue;
    const Shift e = (report.shifts[k] - report.shifts[anchor]) - (truth[k] - truth[anchor]);
    worst = std::max(worst, e.Norm());
  }
  REQUIRE(worst < 0.2);
  // Best-effort shift: interpolated between its neighbours.
  if (bad == 17) {
    const Shift expected = (report.shifts[16] + report.shifts[18]) * 0.5;
    REQUIRE_THAT((report.shifts[bad] - expected).Norm(), WithinAbs(0, 1e-9));
  }
  REQUIRE(std::isnan(report.frame_residual_px[bad]));
  REQUIRE(report.frame_inlier_pairs[bad] == 0);
}

TEST_CASE("incremental solves agree with a from-scratch solve", "[core][consistency_solver]") {
  const int n = 45;
  const double sigma = 0.15;
  const auto truth = TrueDrift(n);
  std::mt19937 rng(6);
  std::bernoulli_distribution is_outlier(0.2), is_hop(0.15);
  const auto frames = Measure(truth, [&](int, int, Shift t) {
    Shift measured = t + Gaussian(&rng, sigma);
    if (is_outlier(rng)) measured = Uniform(&rng, 40);
    else if (is_hop(rng)) measured += RandomHop(&rng);
    return std::vector<PeakCandidate>{Candidate(measured, 1.0)};
  });
  ConsistencySolver incremental({});
  incremental.SetHopTest(kHops);
  SolverReport last;
  int max_iterations = 0;
  for (const auto& pairs : frames) {
    incremental.AddFrame(pairs);
    last = incremental.Solve();
    max_iterations = std::max(max_iterations, last.iterations);
  }
  ConsistencySolver scratch({});
  scratch.SetHopTest(kHops);
  AddAll(&scratch, frames);
  const SolverReport reference = scratch.Solve(true);
  CAPTURE(last.message, reference.message, max_iterations);
  REQUIRE(last.flagged_frames == 0);
  REQUIRE(reference.flagged_frames == 0);
  for (int k = 0; k < n; ++k) {
    REQUIRE((last.shifts[k] - reference.shifts[k]).Norm() < 0.01);
  }
  REQUIRE(RmsErrorModulo(last, truth, kLattice) < 2.0 * sigma * std::sqrt(2.0 / (0.8 * n)));
  // A repeated incremental Solve with nothing new is already converged.
  const SolverReport again = incremental.Solve();
  REQUIRE(again.converged);
  REQUIRE(again.reselections == 0);
}

TEST_CASE("garbage measurements return promptly with flagged frames", "[core][consistency_solver]") {
  const int n = 30;
  std::mt19937 rng(7);
  SolverOptions options;
  ConsistencySolver solver(options);
  solver.SetHopTest(kHops);
  AddAll(&solver, Measure(TrueDrift(n), [&](int, int, Shift) {
           return std::vector<PeakCandidate>{Candidate(Uniform(&rng, 50), 1.0),
                                             Candidate(Uniform(&rng, 50), 0.9)};
         }));
  const SolverReport report = solver.Solve(true);
  CAPTURE(report.message);
  REQUIRE(report.iterations <= options.max_iterations);
  REQUIRE(report.flagged_frames >= n * 8 / 10);
  REQUIRE(report.shifts.size() == static_cast<std::size_t>(n));
  for (const Shift& s : report.shifts) REQUIRE((std::isfinite(s.x) && std::isfinite(s.y)));
}

TEST_CASE("a pair added after its frame, then emptied, is found and used by the solve",
          "[core][consistency_solver]") {
  // Pair (0, 2) is missing when frame 2 arrives: UpdatePair inserts it into
  // the middle of the frame's pairs (the look-up index and the brightest
  // candidates must follow), and later empties it again.
  ConsistencySolver solver({});
  auto pair = [](int i, int j, Shift v) {
    PairMeasurement m;
    m.i = i;
    m.j = j;
    if (std::isfinite(v.x)) m.candidates = {Candidate(v, 1.0)};
    return m;
  };
  const double nan = std::nan("");
  solver.AddFrame({});
  solver.AddFrame({pair(0, 1, {1.0, 0.0})});
  solver.AddFrame({pair(0, 2, {nan, nan}), pair(1, 2, {1.0, 0.5})});
  SolverReport report = solver.Solve(true);
  REQUIRE_THAT(report.shifts[2].x, WithinAbs(2.0, 1e-6));
  REQUIRE_THAT(report.shifts[2].y, WithinAbs(0.5, 1e-6));
  REQUIRE_FALSE(solver.pair_state(0, 2).inlier);
  // The inserted pair agrees with the other two, so it is an inlier and the
  // triangle (0, 1, 2) closes.
  solver.UpdatePair(pair(0, 2, {2.0, 0.5}));
  report = solver.Solve(true);
  CHECK(solver.pair_state(0, 2).inlier);
  CHECK(solver.pair_state(1, 2).inlier);
  CHECK(report.cycles.evaluated == 1);
  CHECK_THAT(report.cycles.max_px, WithinAbs(0.0, 1e-9));
  REQUIRE_THAT(report.shifts[2].x, WithinAbs(2.0, 1e-6));
  // Emptied again: no longer used, and the solve still places frame 2.
  solver.UpdatePair(pair(0, 2, {nan, nan}));
  report = solver.Solve(true);
  CHECK_FALSE(solver.pair_state(0, 2).inlier);
  CHECK(report.cycles.evaluated == 0);
  REQUIRE_THAT(report.shifts[2].x, WithinAbs(2.0, 1e-6));
}

TEST_CASE("solver handles tiny and empty problems and refuses misuse", "[core][consistency_solver]") {
  ConsistencySolver solver({});
  REQUIRE(solver.Solve().shifts.empty());
  solver.AddFrame({});
  SolverReport report = solver.Solve();
  REQUIRE(report.shifts.size() == 1);
  REQUIRE_FALSE(report.flagged[0]);
  PairMeasurement m;
  m.i = 0;
  m.j = 1;
  m.candidates = {Candidate({2.5, -1.0}, 1.0)};
  solver.AddFrame({m});
  report = solver.Solve();
  REQUIRE_THAT(report.shifts[1].x, WithinAbs(2.5, 1e-6));
  REQUIRE_THAT(report.shifts[1].y, WithinAbs(-1.0, 1e-6));
  REQUIRE(solver.pair_state(0, 1).inlier);

  m.candidates = {Candidate({3.0, -1.0}, 1.0)};
  solver.UpdatePair(m);
  report = solver.Solve();
  REQUIRE_THAT(report.shifts[1].x, WithinAbs(3.0, 1e-6));

  REQUIRE_THROWS_AS(solver.AddFrame({m}), std::invalid_argument);         // needs 2 pairs
  REQUIRE_THROWS_AS(solver.pair_state(1, 1), std::invalid_argument);
  REQUIRE_THROWS_AS(solver.pair_state(0, 2), std::invalid_argument);
  PairMeasurement bad = m;
  bad.candidates = {Candidate({std::nan(""), 0.0}, 1.0)};
  REQUIRE_THROWS_AS(solver.UpdatePair(bad), std::invalid_argument);
  SolverOptions options;
  options.shrink_factor = 1.5;
  REQUIRE_THROWS_AS(ConsistencySolver(options), std::invalid_argument);

  // A frame with no measured pair at all is flagged and placed by its neighbour.
  PairMeasurement empty0, empty1;
  empty0.i = 0; empty0.j = 2;
  empty1.i = 1; empty1.j = 2;
  solver.AddFrame({empty0, empty1});
  report = solver.Solve();
  REQUIRE(report.flagged[2]);
  REQUIRE_THAT((report.shifts[2] - report.shifts[1]).Norm(), WithinAbs(0, 1e-9));
  const ShiftMatrix matrices = solver.Matrices();
  REQUIRE(matrices.at(0, 2) == PairStatus::kMissing);
  REQUIRE(std::isnan(matrices.x[matrices.index(0, 2)]));
  REQUIRE_THAT(matrices.x[matrices.index(1, 0)], WithinAbs(-3.0, 1e-9));
}

TEST_CASE("a large series is placed frame by frame and re-solved in the background",
          "[core][consistency_solver]") {
  // Pairs only between frames at most 25 apart (as the engine's overlap gate
  // leaves them), more pairs than global_update_max_pairs: each update places
  // the new frame against fixed earlier ones; full re-solves run on a snapshot.
  const int n = 150, band = 25;
  const double sigma = 0.1;
  const auto truth = TrueDrift(n);
  std::mt19937 rng(21);
  std::bernoulli_distribution is_outlier(0.05), is_hop(0.05);
  auto frames = Measure(truth, [&](int i, int j, Shift t) {
    if (j - i > band) return std::vector<PeakCandidate>{};
    Shift measured = t + Gaussian(&rng, sigma);
    if (is_outlier(rng)) measured = Uniform(&rng, 40);
    else if (is_hop(rng)) measured += RandomHop(&rng);
    return std::vector<PeakCandidate>{Candidate(measured, 1.0), Candidate(measured + RandomHop(&rng), 0.8)};
  });
  SolverOptions options;
  options.global_update_max_pairs = 300;
  ConsistencySolver solver(options);
  solver.SetHopTest(kHops);
  double worst_live_px = 0;
  int backgrounds = 0;
  SolverReport report;
  for (int k = 0; k < n; ++k) {
    solver.AddFrame(frames[k]);
    const bool due = k == 10 || k == 20 || k == 40 || k == 80 || k == 120;
    report = solver.SolveScheduled(due);
    backgrounds += solver.background_running() ? 1 : 0;
    // The new frame, relative to the start: no hop, near the noise level
    // (once it has enough pairs to outvote an outlier).
    const Shift e = (report.shifts[k] - truth[k]) - (report.shifts[0] - truth[0]);
    if (k >= 5) worst_live_px = std::max(worst_live_px, e.Norm());
  }
  CAPTURE(worst_live_px, report.message);
  REQUIRE(solver.num_pairs() < static_cast<std::size_t>(n) * (n - 1) / 2);
  CHECK(backgrounds > 0);
  CHECK(worst_live_px < 1.0);
  solver.WaitForBackground();
  report = solver.Solve();
  CHECK_FALSE(solver.background_running());
  CHECK(report.flagged_frames == 0);
  const double live_rms = RmsError(report, truth);
  const SolverReport scratch = solver.Solve(true);
  CAPTURE(live_rms, RmsError(scratch, truth));
  CHECK(live_rms < 3 * sigma);
  CHECK(RmsError(scratch, truth) < 2 * sigma);
  // Missing pairs (far apart) read as missing.
  CHECK(solver.pair_measurement(0, n - 1).candidates.empty());
  CHECK(solver.pair_state(0, n - 1).chosen == -1);
  CHECK(solver.Matrices().at(0, n - 1) == PairStatus::kMissing);
}

// The totals a report gives, recounted from the pair states: what a report
// after adopting a background solve must agree with.
struct CountedTotals {
  int measured = 0, inlier = 0;
  std::vector<int> frame_inliers;
};

CountedTotals CountPairs(const ConsistencySolver& solver) {
  CountedTotals c;
  const int n = solver.num_frames();
  c.frame_inliers.assign(static_cast<std::size_t>(n), 0);
  for (int j = 1; j < n; ++j) {
    for (int i = 0; i < j; ++i) {
      if (solver.pair_measurement(i, j).candidates.empty()) continue;
      ++c.measured;
      if (!solver.pair_state(i, j).inlier) continue;
      ++c.inlier;
      ++c.frame_inliers[static_cast<std::size_t>(i)];
      ++c.frame_inliers[static_cast<std::size_t>(j)];
    }
  }
  return c;
}

void RequireTotalsMatchPairs(const SolverReport& report, const ConsistencySolver& solver) {
  const CountedTotals counted = CountPairs(solver);
  REQUIRE(report.measured_pairs == counted.measured);
  REQUIRE(report.inlier_pairs == counted.inlier);
  REQUIRE(report.frame_inlier_pairs == counted.frame_inliers);
}

TEST_CASE("adopting a background re-solve places the frames added meanwhile and counts each pair once",
          "[core][consistency_solver]") {
  const int n = 140, band = 20;
  const double sigma = 0.1;
  const auto truth = TrueDrift(n);
  std::mt19937 rng(5);
  auto frames = Measure(truth, [&](int i, int j, Shift t) {
    if (j - i > band) return std::vector<PeakCandidate>{};
    return std::vector<PeakCandidate>{Candidate(t + Gaussian(&rng, sigma), 1.0)};
  });
  SolverOptions options;
  options.global_update_max_pairs = 300;
  // The frames placed while the re-solve ran are re-placed against it a few
  // per update: all 19 at once, or 4 per update over five updates.
  options.catch_up_frames_per_solve = GENERATE(32, 4);
  CAPTURE(options.catch_up_frames_per_solve);
  ConsistencySolver solver(options);
  solver.SetHopTest(kHops);
  auto error_of = [&](const SolverReport& r, int k) {
    return ((r.shifts[k] - truth[k]) - (r.shifts[0] - truth[0])).Norm();
  };
  SolverReport report;
  for (int k = 0; k < 100; ++k) {
    solver.AddFrame(frames[k]);
    report = solver.SolveScheduled(false);
  }
  // A re-solve of frames 0..100 runs while frames 101..119 are placed; it is
  // adopted by whichever of their updates finds it finished (or the wait).
  solver.AddFrame(frames[100]);
  report = solver.SolveScheduled(true);
  REQUIRE(solver.background_running());
  int adopted_frames = 0;
  for (int k = 101; k < 120; ++k) {
    solver.AddFrame(frames[k]);
    report = solver.Solve();
    if (report.adopted_background) adopted_frames = report.background_frames;
    RequireTotalsMatchPairs(report, solver);
  }
  solver.WaitForBackground();
  report = solver.Solve();
  if (report.adopted_background) adopted_frames = report.background_frames;
  CHECK(adopted_frames == 101);
  RequireTotalsMatchPairs(report, solver);
  // Updates without new frames finish the catch-up; every one counts each
  // pair once.
  for (int update = 0; update < 5; ++update) {
    report = solver.Solve();
    RequireTotalsMatchPairs(report, solver);
  }
  for (int k = 101; k < 120; ++k) CHECK(error_of(report, k) < 5 * sigma);

  // Frames added, not yet placed, when the finished re-solve is adopted: the
  // adopting Solve() places them, and their pairs count once.
  report = solver.SolveScheduled(true);  // snapshot of frames 0..119
  for (int k = 120; k < n; ++k) solver.AddFrame(frames[k]);
  solver.WaitForBackground();
  report = solver.Solve();
  REQUIRE(report.adopted_background);
  CHECK(report.background_frames == 120);
  RequireTotalsMatchPairs(report, solver);
  CHECK(report.flagged_frames == 0);
  for (int k = 120; k < n; ++k) CHECK(error_of(report, k) < 5 * sigma);
}

// Timing of the typical incremental case (hidden: run with "[.benchmark]").
TEST_CASE("incremental solve time at 50 and 200 frames", "[.benchmark]") {
  for (int n : {50, 200}) {
    const double sigma = 0.2;
    const auto truth = TrueDrift(n);
    std::mt19937 rng(8);
    std::bernoulli_distribution is_outlier(0.1), is_hop(0.05);
    const auto frames = Measure(truth, [&](int, int, Shift t) {
      Shift measured = t + Gaussian(&rng, sigma);
      if (is_outlier(rng)) measured = Uniform(&rng, 40);
      else if (is_hop(rng)) measured += RandomHop(&rng);
      return std::vector<PeakCandidate>{Candidate(measured, 1.0), Candidate(measured + RandomHop(&rng), 0.8)};
    });
    ConsistencySolver solver({});
    solver.SetHopTest(kHops);
    double last_ms = 0, worst_ms = 0, total_ms = 0;
    SolverReport report;
    for (int k = 0; k < n; ++k) {
      solver.AddFrame(frames[k]);
      const auto start = std::chrono::steady_clock::now();
      report = solver.Solve();
      last_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      worst_ms = std::max(worst_ms, last_ms);
      total_ms += last_ms;
    }
    const auto start = std::chrono::steady_clock::now();
    const SolverReport scratch = solver.Solve(true);
    const double scratch_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    WARN("k=" << n << ": last incremental Solve " << last_ms << " ms (" << report.iterations
              << " iterations, " << report.cg_iterations << " PCG sweeps), worst " << worst_ms << " ms, mean " << total_ms / n
              << " ms; from scratch " << scratch_ms << " ms (" << scratch.iterations
              << " iterations); rms error " << RmsError(report, truth) << " px (sigma*sqrt(2/k) = "
              << sigma * std::sqrt(2.0 / n) << ")");
    REQUIRE(report.flagged_frames == 0);
  }
}

}  // namespace
}  // namespace livealign
