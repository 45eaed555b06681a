#pragma once
// Robust translation synchronisation: one consistent shift per frame from all
// pairwise measurements j_from_i ~ s_j - s_i (TranSync: Huang et al., NeurIPS 2017;
// all-pairs drift correction: Savitzky et al., Ultramicroscopy 191, 2018).
//
// The solver owns every pair measurement it was given (copies; only measured
// pairs are stored, so a long series whose far-apart frames do not overlap
// costs memory in proportion to its measured pairs) and its current solution.
// Frames are added one at a time with all their pairs to earlier frames;
// Solve() re-solves warm-started from the previous solution (or from
// scratch). Not thread-safe: one owner thread calls everything (the solver
// may run a from-scratch solve of a snapshot on its own background thread).
//
// The solver is lattice-agnostic and works in one coordinate frame: its
// shifts are determined only up to the lattice on a crystal, and the lattice
// tracker (core/lattice_tracker.hpp) alone turns them into published
// coordinates (solver shift + lattice offset). Its only notion of the lattice
// is the HopTest the tracker hands it (SetHopTest, core/hop_test.hpp): a pair
// whose residual the hop test calls a hop is corrected by that lattice vector
// (and counted as snapped), as a measurement correction, before it is
// weighted; everything else is robust IRLS. It never moves frames by
// lattice vectors itself: a frame (or run of frames) a lattice vector away
// is consistent modulo the lattice, and the tracker's continuity and coarse
// evidence decide where it sits.
//
// Method, per from-scratch Solve():
//  1. Triangle (cycle) scores: the median over third frames m (a bounded,
//     evenly spaced sample of the pair's partners) of |R_ij + R_jm + R_mi|.
//     With a hop test, triangles whose error is the same hop for most m
//     pre-correct the hopped pair.
//  2. Warm start for each frame k: per-axis weighted median over i of
//     s_i + R_ik, weights from the triangle scores.
//  3. IRLS with the Geman-McClure loss in a shrinking-threshold (TranSync /
//     GNC) schedule, floored at max(min_threshold_px, scale_multiplier * robust
//     sigma). Every iteration re-selects, per pair, the candidate peak closest
//     to s_j - s_i, corrects it by a hop when the hop test calls it one, and
//     solves the weighted sparse Laplacian system by warm-started Jacobi-PCG
//     (O(pairs) per sweep).
//  4. Frames with too few inlier pairs are flagged, their pairs removed, the
//     rest re-solved, and flagged frames get a best-effort shift by linear
//     interpolation in frame index. Gauge: s_0 = (0, 0).
// An incremental Solve() does the same warm-started over all pairs while
// there are at most global_update_max_pairs of them; beyond, it only places
// the new frames: triangle scores, warm start and IRLS over the new frame's
// own pairs with the earlier frames held fixed (O(pairs of the new frame)).
// The earlier frames then move only by full re-solves, which SolveScheduled()
// runs on a snapshot in a background thread and a later Solve() adopts, so no
// single update pays for one. The number of iterations is bounded, so Solve()
// always returns.
//
//   ConsistencySolver solver({});
//   solver.AddFrame({});                        // frame 0
//   solver.AddFrame({m01});                     // frame 1: pair (0, 1)
//   solver.AddFrame({m02, m12});                // frame 2
//   SolverReport report = solver.Solve();
//   if (report.flagged[2]) ...                  // frame 2 could not be placed

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/hop_test.hpp"
#include "core/shift.hpp"
#include "core/shift_matrix.hpp"

namespace livealign {

struct SolverOptions {
  // Hard bound on IRLS iterations per Solve(); each costs
  // O(k^2 * (K + PCG sweeps)).
  int max_iterations = 30;
  // Bound on Jacobi-PCG sweeps per linear solve (per axis).
  int max_cg_iterations = 50;
  // PCG stops when the preconditioned residual corresponds to this many pixels.
  double cg_tolerance_px = 1e-5;
  // Floor of the inlier threshold, pixels. Below ~0.5 px sub-pixel peak bias
  // (peak locking) starts rejecting good pairs; larger keeps more bad ones.
  double min_threshold_px = 0.5;
  // The threshold floor is also at least this many robust sigmas of the
  // inlier residuals, so noisy series are not over-pruned.
  // 3.5 sigma rejects ~0.2 % of good 2-D residuals (Rayleigh tail exp(-r^2/2)).
  double scale_multiplier = 3.5;
  // Cap of the threshold floor, pixels: when most pairs are garbage the robust
  // sigma is meaningless, and a huge floor would accept everything. With a
  // hop test the floor is also capped at its tolerance (HopTest::hop_px),
  // otherwise hops would pass as inliers without being corrected.
  double max_threshold_px = 3.0;
  // Threshold shrink factor per iteration (TranSync c < 1). Smaller is faster
  // but commits earlier to an inlier set.
  double shrink_factor = 0.5;
  // A from-scratch solve starts at this many times the floor (or at twice the
  // median residual of the warm start if larger); incremental solves start at
  // incremental_start_factor times the floor.
  double scratch_start_factor = 16.0;
  double incremental_start_factor = 1.0;
  // A frame is flagged when fewer than max(min_inlier_fraction * measured
  // pairs, min(min_inlier_pairs, k - 1)) of its pairs are inliers.
  double min_inlier_fraction = 0.3;
  int min_inlier_pairs = 2;
  // Converged when no choice or inlier status changed and no shift moved more
  // than this, pixels, with the threshold at its floor.
  double convergence_px = 1e-3;
  // Triangles evaluated for the cycle statistics in the report (all when
  // fewer exist, else a fixed-seed random sample).
  int max_cycle_checks = 5000;
  // Third frames sampled per pair for its triangle score (all when the pair
  // has fewer partners). The score only sets initial weights and detects
  // hops, for which a few dozen triangles are as decisive as thousands.
  int max_triangle_partners = 48;
  // Incremental solves re-select and re-weight every pair, and full re-solves
  // run synchronously, while there are at most this many pairs (~60 frames of
  // all pairs: a full re-solve then takes ~10 ms); beyond, updates place only
  // the new frames and full re-solves run in the background.
  int global_update_max_pairs = 2000;
  // IRLS iterations placing one new frame against fixed earlier frames.
  int max_local_iterations = 10;
  // Adopting a background re-solve of frames 0..f-1 leaves the frames placed
  // since against the old solution; each later update re-places at most this
  // many of them (oldest first) against the new one. Re-placing them all at
  // once cost 80 ms at k = 3763 of 256^2 (922 frames added while the
  // re-solve ran), 9x an update; 32 cost about a third of one.
  int catch_up_frames_per_solve = 32;

  bool Check(std::string* error) const;
};

// Cycle (triangle) consistency of the final solution.
struct CycleStatistics {
  int evaluated = 0;          // triangles with three inlier pairs that were checked
  double median_px = 0;       // median |U_ij + U_jm - U_im| of the used (snapped) shifts
  double max_px = 0;
  // Triangles whose error with the chosen candidates before correction the
  // hop test calls a hop (hops that the correction repaired).
  int lattice_vector_count = 0;
};

struct SolverReport {
  std::vector<Shift> shifts;               // per frame; frame 0 = (0, 0)
  std::vector<double> frame_residual_px;   // RMS residual of the frame's inlier pairs (NaN: none)
  std::vector<int> frame_inlier_pairs;
  std::vector<bool> flagged;               // too few inlier pairs; shift is interpolated
  int flagged_frames = 0;
  int measured_pairs = 0;                  // pairs with at least one candidate
  int inlier_pairs = 0;
  double consistency_rms_px = 0;           // RMS residual over inlier pairs
  double rejected_pair_fraction = 0;       // rejected / measured
  int pairs_snapped = 0;                   // inlier pairs corrected by a hop
  int pairs_not_brightest = 0;             // pairs using a candidate other than [0]
  int reselections = 0;                    // candidate choices changed during this Solve
  double inlier_threshold_px = 0;          // final threshold
  double robust_sigma_px = 0;              // per-axis sigma of inlier residuals
  CycleStatistics cycles;
  int iterations = 0;
  int cg_iterations = 0;                   // total PCG sweeps
  bool converged = false;
  // This Solve() applied a background full re-solve (frames 0..n-1 of its
  // snapshot), and how many frames that snapshot held.
  bool adopted_background = false;
  int background_frames = 0;
  // The first frame j whose pairs (i, j) may have a different state or
  // measurement than at the previous report (num_frames: none): a view of the
  // pairs that is kept up to date needs to revisit only frames from here.
  int first_changed_frame = 0;
  std::string message;
};

class ConsistencySolver {
 public:
  struct PairState {
    int chosen = -1;          // candidate index in use, -1 when none
    Shift used_j_from_i;      // chosen candidate + snap correction
    double weight = 0;        // final IRLS weight in [0, 1]
    bool inlier = false;
    bool snapped = false;     // corrected by a hop (HopTest::Hop)
    int snap_na = 0, snap_nb = 0;
    double residual_px = 0;   // |s_j - s_i - used_j_from_i|, NaN when missing
  };
  // The hop correction in a pair's used value: used_j_from_i minus the
  // chosen candidate (zero when not snapped or never chosen).
  static Shift SnapCorrection(const PairMeasurement& m, const PairState& state) {
    return state.chosen >= 0 && state.snapped
               ? state.used_j_from_i - m.candidates[static_cast<std::size_t>(state.chosen)].j_from_i
               : Shift{};
  }

  // Throws std::invalid_argument when options.Check() fails.
  explicit ConsistencySolver(const SolverOptions& options);
  // Cancels and waits for a background solve.
  ~ConsistencySolver();
  ConsistencySolver(const ConsistencySolver&) = delete;
  ConsistencySolver& operator=(const ConsistencySolver&) = delete;

  // Adds frame k = num_frames(). pairs_with_earlier[i] is the measurement of
  // (i, k) for i = 0..k-1 (candidates may be empty: such pairs are missing
  // and not stored). Throws std::invalid_argument when the size or a pair's
  // (i, j) does not match, or a candidate shift is not finite. The new frame
  // is placed by the next Solve().
  void AddFrame(std::vector<PairMeasurement> pairs_with_earlier);
  // Replaces the measurement of pair (m.i, m.j) (e.g. refined or coarse
  // results). Throws std::invalid_argument unless m.i < m.j < num_frames().
  void UpdatePair(const PairMeasurement& m);
  // Enables (or with std::nullopt disables) the correction of unit-cell
  // hops: the lattice tracker's hop test (LatticeTracker::hop_test()).
  void SetHopTest(std::optional<HopTest> hop_test);
  const std::optional<HopTest>& hop_test() const { return hop_test_; }

  // Re-solves all shifts: warm-started from the previous solution for frames
  // already placed, unless from_scratch (then triangle scores for all pairs
  // and the full threshold schedule; waits for, and drops, a background
  // solve). An incremental Solve() first adopts a finished background solve.
  // Never throws for numerical reasons; non-convergence is in the report.
  SolverReport Solve(bool from_scratch = false);
  // Solve() for a live update: when full_resolve_due, a from-scratch solve
  // runs now while the problem is small (at most global_update_max_pairs
  // pairs), else on a snapshot in a background thread (unless one is still
  // running), and the update itself is incremental.
  SolverReport SolveScheduled(bool full_resolve_due);
  bool background_running() const { return background_.valid(); }
  // Blocks until a running background solve has finished (the next Solve()
  // adopts it); returns at once when none runs.
  void WaitForBackground() const {
    if (background_.valid()) background_.wait();
  }

  int num_frames() const { return num_frames_; }
  // Pairs stored (those with at least one candidate when added).
  std::size_t num_pairs() const { return total_pairs_; }
  // Current shifts (the last Solve(); new frames are unplaced until then).
  const std::vector<Shift>& shifts() const { return shifts_; }
  // Requires: i < j < num_frames(); throws std::invalid_argument otherwise.
  // A pair that is not stored reads as an empty measurement (chosen -1).
  const PairState& pair_state(int i, int j) const;
  const PairMeasurement& pair_measurement(int i, int j) const;
  // The used pairs as a dense matrix (core/shift_matrix.hpp): the chosen
  // candidate plus its snap, or the brightest peak of a pair never chosen;
  // status kInlier, kSnapped or kRejected (the solver never sees kNoOverlap).
  ShiftMatrix Matrices() const;
  // Calls visit(i, j, used_j_from_i, status, snap) for every stored pair
  // with j in [j_begin, j_end), with the value and status Matrices() enters
  // and the hop correction in it (SnapCorrection): O(those pairs), for views
  // that must not build the dense matrix (core/shift_matrix_view.hpp).
  template <typename Visit>
  void ForEachUsedPair(int j_begin, int j_end, Visit&& visit) const;

 private:
  struct Pair {
    PairState state;
    double work_weight = 0;      // IRLS weight of the current iteration
    double triangle_score = -1;  // < 0: not computed yet
    Shift triangle_hop;          // hop seen in the triangles (zero: none)
  };
  // Frame j's stored pairs with earlier frames, ascending i. Immutable once
  // shared, so a background solve can read a snapshot without locks.
  using Block = std::vector<PairMeasurement>;
  // A block's pairs' i and brightest candidates (index_).
  struct PairIndex {
    std::vector<int> partners;
    std::vector<Shift> brightest;
  };
  static std::shared_ptr<const PairIndex> IndexOf(const Block& block);
  struct Totals {
    int measured = 0, inlier = 0, snapped = 0, not_brightest = 0;
    double sum_sq = 0;
  };

  // Position of pair (i, j) in block j, -1 when not stored.
  int Find(int i, int j) const;
  // m's brightest candidate, NaN when it has none (PairIndex).
  static Shift Brightest(const PairMeasurement& m);
  void CheckPairIndices(int i, int j, const char* who) const;
  void LoadSnapshot(const std::vector<std::shared_ptr<const Block>>& blocks,
                    const std::vector<std::shared_ptr<const PairIndex>>& index);
  void AppendFrame(std::shared_ptr<const Block> block, std::shared_ptr<const PairIndex> index);

  // Best current estimate of b_from_a for any ordered pair; false when missing.
  bool Estimate(int a, int b, Shift* b_from_a) const;
  bool EstimateAt(int j, int index, bool forward, Shift* out) const;
  void ScoreTriangles(int j, int index);
  void WarmStart(int k);
  // Chooses the candidate for pair `index` of frame j under the current
  // shifts; returns the residual norm.
  double Choose(int j, int index, double threshold_px);
  // Weighted least squares (Pair::work_weight) by Jacobi-PCG over the stored
  // pairs, warm-started from shifts_.
  void SolveLinear();
  CycleStatistics EvaluateCycles() const;
  SolverReport SolveGlobal(bool from_scratch);
  // Places frame k against the fixed earlier frames; returns iterations.
  int PlaceFrame(int k, double threshold_px);
  void RecomputeTotals();
  // Adds the pairs of one frame (with earlier frames) to the totals, their
  // residuals recomputed from the current shifts; sign -1 takes away what the
  // last add counted (the pair states must not have changed since).
  void AddToTotals(int frame, int sign = 1);
  // Re-places up to catch_up_frames_per_solve of the frames an adoption left
  // placed against the old solution; returns the first re-placed (or
  // num_frames_ when none).
  int CatchUp(double threshold_px);
  SolverReport MakeReport(int iterations, bool converged, int reselections) const;
  void StartBackground();
  // Adopts a finished background solve; returns the frames it covered (0: none).
  int AdoptBackground();
  void StopBackground();
  bool Cancelled() const { return cancel_ != nullptr && cancel_->load(std::memory_order_relaxed); }

  SolverOptions options_;
  std::optional<HopTest> hop_test_;
  std::uint64_t generation_ = 0;  // bumped by UpdatePair and SetHopTest
  int changed_from_ = 0;          // SolverReport::first_changed_frame of the next report
  int num_frames_ = 0;
  int placed_frames_ = 0;       // frames with a solved (warm-start) shift
  double last_floor_px_ = 0;    // threshold floor of the last Solve()
  double last_threshold_px_ = 0;
  double last_sigma_px_ = 0;
  int last_cg_iterations_ = 0;  // PCG sweeps in the last Solve() (report)
  CycleStatistics last_cycles_;
  std::vector<std::shared_ptr<const Block>> blocks_;  // per frame j
  std::vector<std::vector<Pair>> states_;             // per frame j, aligned with blocks_[j]
  std::vector<std::vector<int>> later_;               // per frame i: frames j > i paired with it
  // Per frame j, aligned with blocks_[j] and immutable like it (shared with
  // a background solve's snapshot, replaced on write): each pair's i (what
  // Find() searches) and its brightest candidate (NaN when it has none: what
  // EstimateAt() reads). Why copies: the triangle scores, most of a
  // from-scratch solve, look up ~50 other pairs for each pair, and reaching
  // these through the 72-byte measurement and its candidates' own
  // allocation cost a cache miss each. 20 bytes a pair.
  std::vector<std::shared_ptr<const PairIndex>> index_;
  // ScoreTriangles' scratch: where a sampled triangle's pairs (j, m) and
  // (i, m) are (frame, index in its block).
  struct TriangleLookup {
    int jm_frame = 0, jm_index = 0, im_frame = 0, im_index = 0;
  };
  std::vector<TriangleLookup> triangle_lookups_;
  std::size_t total_pairs_ = 0;
  std::vector<Shift> shifts_;
  std::vector<bool> flagged_;
  Totals totals_;
  std::vector<int> frame_inliers_;
  std::vector<double> frame_sum_sq_;
  // Frames [catch_up_next_, catch_up_end_) were placed against the solution
  // a background re-solve replaced, and are re-placed by CatchUp().
  int catch_up_next_ = 0;
  int catch_up_end_ = 0;
  // Background from-scratch solve of the first background_frames_ frames.
  std::future<std::unique_ptr<ConsistencySolver>> background_;
  std::shared_ptr<std::atomic<bool>> background_cancel_;
  std::uint64_t background_generation_ = 0;
  const std::atomic<bool>* cancel_ = nullptr;  // set in a background solver
};

template <typename Visit>
void ConsistencySolver::ForEachUsedPair(int j_begin, int j_end, Visit&& visit) const {
  for (int j = std::max(j_begin, 1); j < std::min(j_end, num_frames_); ++j) {
    const Block& block = *blocks_[static_cast<std::size_t>(j)];
    for (std::size_t q = 0; q < block.size(); ++q) {
      const PairMeasurement& m = block[q];
      if (m.candidates.empty()) continue;
      const PairState& state = states_[static_cast<std::size_t>(j)][q].state;
      const Shift u = state.chosen >= 0 ? state.used_j_from_i : m.candidates[0].j_from_i;
      const PairStatus status = !state.inlier  ? PairStatus::kRejected
                                : state.snapped ? PairStatus::kSnapped
                                                : PairStatus::kInlier;
      visit(static_cast<int>(m.i), j, u, status, SnapCorrection(m, state));
    }
  }
}

}  // namespace livealign
