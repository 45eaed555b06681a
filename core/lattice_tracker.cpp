#include "core/lattice_tracker.hpp"

namespace livealign {
namespace {

// The lattice is estimated from each new raw frame until found (at most this
// many), re-estimated from the average when the series reaches this many
// frames and then at every fourfold growth, and at the end.
constexpr int kFirstLatticeEstimate = 8;

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
  reciprocal_peaks_.clear();
  for (const ReciprocalPeak& peak : estimate.peaks) {
    if (peak.indexed) reciprocal_peaks_.push_back(Shift{peak.fx, peak.fy});
  }
  return true;
}

void LatticeTracker::AddCoarseEvidence(const std::vector<CoarsePairEvidence>& evidence) {
  coarse_.insert(coarse_.end(), evidence.begin(), evidence.end());
}

void LatticeTracker::Resolve(const SolverReport& solve, const std::vector<double>& timestamps_s) {
  if (hop_test_) {
    offsets_ = ResolveLatticeOffsets(solve.shifts, solve.flagged, *hop_test_, coarse_, {}, timestamps_s);
  } else {
    offsets_ = LatticeOffsetReport{};
    offsets_.offsets.assign(solve.shifts.size(), Shift{});
  }
}

Shift LatticeTracker::offset(int i) const {
  return i < static_cast<int>(offsets_.offsets.size()) ? offsets_.offsets[i] : Shift{};
}

void LatticeTracker::CheckTemporal(const std::vector<Shift>& shifts,
                                   const std::vector<double>& timestamps_s) {
  temporal_ = TemporalCheck(shifts, timestamps_s, hop_test_);
}

}  // namespace livealign
