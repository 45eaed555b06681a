#include "core/lattice_tracker.hpp"

#include <algorithm>
#include <cmath>

namespace livealign {
namespace {

// The lattice is estimated from each new raw frame until found (at most this
// many), re-estimated from the average when the series reaches this many
// frames and then at every fourfold growth, and at the end.
constexpr int kFirstLatticeEstimate = 8;
// Run correlations kept (Resolve): a handful per stage jump.
constexpr std::size_t kMaxKeptRunCorrelations = 256;
// A kept run correlation is reused while the runs' relative position is
// within this of the one it was computed at: re-solves move frames by
// hundredths of a pixel, the coarse correlation varies over many pixels,
// and a lattice translate (which a new solution may apply) moves them by
// far more.
constexpr double kRunReuseTolerancePx = 0.5;

}  // namespace

LatticeTracker::LatticeTracker(bool enabled, HopTolerances tolerances)
    : enabled_(enabled), tolerances_(tolerances), next_estimate_(kFirstLatticeEstimate) {}

bool LatticeTracker::EstimateDue(int k) const {
  return (!lattice_ && k < kFirstLatticeEstimate) || k + 1 >= next_estimate_;
}

void LatticeTracker::MarkEstimated(int k) {
  if (k + 1 >= next_estimate_) next_estimate_ = 4 * (k + 1);
}

bool LatticeTracker::Estimate(FrameView average, bool average_usable, FrameView newest) {
  if (!enabled_) return false;
  return Apply(EstimateFrom(average, average_usable, newest));
}

LatticeEstimate LatticeTracker::EstimateFrom(FrameView average, bool average_usable, FrameView newest) {
  // The power spectrum does not depend on the frame's position, so a single
  // raw frame already shows the Bragg peaks (a perovskite lattice is found in
  // one 512^2 frame at 0.08 counts/px); this gives the solver its lattice from
  // the first frame on, before any registration exists. Later estimates use
  // the registered average, which is sharper.
  LatticeEstimate estimate;
  if (average_usable) estimate = EstimateLattice(average, LatticeEstimateOptions{});
  if (!estimate.found && newest.rows() >= 64 && newest.cols() >= 64) {
    estimate = EstimateLattice(newest, LatticeEstimateOptions{});
  }
  return estimate;
}

bool LatticeTracker::Apply(const LatticeEstimate& estimate) {
  if (!enabled_ || !estimate.found) return false;
  lattice_ = estimate.lattice;
  hop_test_.emplace(estimate.lattice, tolerances_);
  lattice_changed_ = true;
  run_heights_.clear();  // the candidates were this lattice's vectors
  kept_run_heights_ = 0;
  reciprocal_peaks_.clear();
  for (const ReciprocalPeak& peak : estimate.peaks) {
    if (peak.indexed) reciprocal_peaks_.push_back(Shift{peak.fx, peak.fy});
  }
  return true;
}

void LatticeTracker::AddCoarseEvidence(const std::vector<CoarsePairEvidence>& evidence) {
  coarse_.insert(coarse_.end(), evidence.begin(), evidence.end());
}

void LatticeTracker::Resolve(const SolverReport& solve, const std::vector<double>& timestamps_s,
                             const CoarseRunScore& runs) {
  if (hop_test_) {
    CoarseRunScore kept;
    if (runs) {
      kept = [this, &runs](const CoarseRunQuery& query) {
        if (query.first.empty() || query.second.empty()) return runs(query);
        Shift first_mean, second_mean;
        for (const Shift& s : query.first_shifts) first_mean += s * (1.0 / query.first_shifts.size());
        for (const Shift& s : query.second_shifts) second_mean += s * (1.0 / query.second_shifts.size());
        const Shift relative = second_mean - first_mean;
        // The candidates are the lattice's vectors, and the kept heights go
        // when the lattice changes: the runs alone name a query.
        const auto key = std::make_tuple(query.first.front(), static_cast<int>(query.first.size()),
                                         query.second.front(), static_cast<int>(query.second.size()));
        const auto found = run_heights_.find(key);
        if (found != run_heights_.end()) {
          for (const KeptRunHeights& kept_heights : found->second) {
            if ((kept_heights.relative - relative).Norm() <= kRunReuseTolerancePx) return kept_heights.heights;
          }
        }
        if (kept_run_heights_ >= kMaxKeptRunCorrelations) {
          run_heights_.clear();
          kept_run_heights_ = 0;
        }
        std::vector<double> heights = runs(query);
        run_heights_[key].push_back({relative, heights});
        ++kept_run_heights_;
        return heights;
      };
    }
    offsets_ = ResolveLatticeOffsets(solve.shifts, solve.flagged, *hop_test_, coarse_, {}, timestamps_s, kept);
  } else {
    offsets_ = LatticeOffsetReport{};
    offsets_.offsets.assign(solve.shifts.size(), Shift{});
  }
}

Shift LatticeTracker::offset(int i) const {
  return i < static_cast<int>(offsets_.offsets.size()) ? offsets_.offsets[i] : Shift{};
}

PairStatus LatticeTracker::PublishedStatus(int i, int j, PairStatus solver_status, Shift snap) const {
  if (solver_status == PairStatus::kRejected || !hop_test_) return solver_status;
  // The correction is a lattice vector (a hop plus two offsets), so half the
  // shortest spacing separates zero from every other one.
  const Shift correction = snap + offset(j) - offset(i);
  return correction.Norm() > 0.5 * hop_test_->lattice().ShortestSpacing() ? PairStatus::kSnapped
                                                                           : PairStatus::kInlier;
}

void LatticeTracker::CountSnappedPairs(const ConsistencySolver& solver, const SolverReport& solve) {
  const int n = solver.num_frames();
  const bool all_offsets_zero =
      std::all_of(offsets_.offsets.begin(), offsets_.offsets.end(), [](Shift o) { return o == Shift{}; });
  if (all_offsets_zero) {
    // snap + 0 is a non-zero lattice vector exactly when the solver snapped.
    pairs_snapped_ = solve.pairs_snapped;
    snapped_by_frame_.clear();  // the next count with offsets starts over
    counted_offsets_.clear();
    lattice_changed_ = false;
    return;
  }
  int from = lattice_changed_ ? 0 : std::clamp(solve.first_changed_frame, 0, n);
  // Pair (i, j) depends on the offsets of i < j: the first changed offset
  // (or the first frame never counted) dirties every frame from it on.
  from = std::min(from, static_cast<int>(counted_offsets_.size()));
  for (int f = 0; f < from; ++f) {
    if (!(offset(f) == counted_offsets_[static_cast<std::size_t>(f)])) {
      from = f;
      break;
    }
  }
  snapped_by_frame_.resize(static_cast<std::size_t>(n), 0);
  std::fill(snapped_by_frame_.begin() + from, snapped_by_frame_.end(), 0);
  ForEachPublishedPair(solver, from, n, [&](int /*i*/, int j, Shift /*j_from_i*/, PairStatus status) {
    if (status == PairStatus::kSnapped) ++snapped_by_frame_[j];
  });
  pairs_snapped_ = 0;
  for (const int count : snapped_by_frame_) pairs_snapped_ += count;
  counted_offsets_.resize(static_cast<std::size_t>(n));
  for (int f = 0; f < n; ++f) counted_offsets_[static_cast<std::size_t>(f)] = offset(f);
  lattice_changed_ = false;
}

void LatticeTracker::CheckTemporal(const std::vector<Shift>& shifts,
                                   const std::vector<double>& timestamps_s) {
  temporal_ = TemporalCheck(shifts, timestamps_s, hop_test_);
}

}  // namespace livealign
