#pragma once
// The lattice tracker: on a crystal the pairwise solution is only determined
// modulo the lattice, and this class alone turns it into published
// coordinates. It owns
//  - the lattice estimate (from each raw frame until found, then from the
//    running average at 8 frames and every fourfold growth, and at the end);
//  - the coarse (Bragg-free) pair evidence;
//  - the hop test (core/hop_test.hpp): the one set of hop tolerances
//    (EngineOptions::hop_tolerance, coarse_hop_tolerance, gap_hop_tolerance,
//    gap_clarity) applied to the
//    current lattice. The tracker hands it to the consistency solver as the
//    solver's only notion of the lattice (hopped pairs are corrected there),
//    and applies it itself in the offsets' continuity and coarse tests and
//    the temporal check;
//  - each frame's lattice offset (core/lattice_offsets.hpp): published
//    pairwise shift = solver shift + offset;
//  - stage-jump detection: a deviation from smooth drift that is not a
//    lattice vector (LatticeOffsetReport::jumps) is the one stage-jump
//    detector the quality reports (the pair search's peak-height test only
//    chooses how the next pairs are searched);
//  - the temporal check of the published shifts (lattice-vector spikes);
//  - which used pairs are snapped in published coordinates: a pair whose
//    published value (measurement + the solver's hop correction + the two
//    frames' offset difference) differs from its measured peak by a lattice
//    vector. The solver's own "snapped" is relative to its modulo-lattice
//    frame: across a stage jump a pair the solver corrects may be exactly
//    what the published shifts say, and one it leaves may not be.
//
// Not synchronised: the engine thread calls it.

#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "core/consistency_solver.hpp"
#include "core/frame.hpp"
#include "core/hop_test.hpp"
#include "core/lattice.hpp"
#include "core/lattice_offsets.hpp"
#include "core/shift.hpp"
#include "core/temporal_check.hpp"

namespace livealign {

class LatticeTracker {
 public:
  // enabled: EngineOptions::lattice_snapping (off: never a lattice, offsets
  // 0); tolerances: from EngineOptions (hop_tolerance, coarse_hop_tolerance,
  // gap_hop_tolerance, gap_clarity).
  explicit LatticeTracker(bool enabled, HopTolerances tolerances = {});
  const HopTolerances& tolerances() const { return tolerances_; }

  // Whether the lattice should be (re-)estimated after frame k was added.
  bool EstimateDue(int k) const;
  // Advances the schedule past an estimate after frame k.
  void MarkEstimated(int k);
  // Estimates the lattice from `average` when `average_usable` (it covers
  // >= 64^2 and the series has more than one frame), else or failing that
  // from the raw newest frame. Returns true when a lattice was found (then
  // lattice() is it); otherwise the previous estimate stays.
  bool Estimate(FrameView average, bool average_usable, FrameView newest);
  // Estimate() in two steps, so the estimate can run on another thread: the
  // pure computation (no tracker state; any thread), then, on the tracker's
  // thread, taking a found lattice (returns true then).
  static LatticeEstimate EstimateFrom(FrameView average, bool average_usable, FrameView newest);
  bool Apply(const LatticeEstimate& estimate);
  bool enabled() const { return enabled_; }

  void AddCoarseEvidence(const std::vector<CoarsePairEvidence>& evidence);
  // Pins every frame's lattice offset against the solver's solution;
  // timestamps_s: of every frame solved (or empty: the frame index is the time).
  // runs: the run correlation across stage jumps (ResolveLatticeOffsets);
  // what it returns is kept, per jump, run sizes and the runs' relative
  // position, until the lattice changes, so a live series pays for it only
  // when a run has doubled or a re-solve has moved the runs.
  void Resolve(const SolverReport& solve, const std::vector<double>& timestamps_s,
               const CoarseRunScore& runs = {});
  // Frame i's lattice offset (0 before Resolve covered it).
  Shift offset(int i) const;
  // A used pair's status in published coordinates (see the top): kRejected
  // stays; kInlier or kSnapped by whether the pair's published correction,
  // snap + offset(j) - offset(i), is a non-zero lattice vector. `snap` is the
  // solver's hop correction (ConsistencySolver::ForEachUsedPair).
  PairStatus PublishedStatus(int i, int j, PairStatus solver_status, Shift snap) const;
  // Calls visit(i, j, j_from_i, status) for the solver's used pairs with j in
  // [j_begin, j_end) (ConsistencySolver::ForEachUsedPair) in published
  // coordinates: the value moved by offset(j) - offset(i), the status
  // PublishedStatus().
  template <typename Visit>
  void ForEachPublishedPair(const ConsistencySolver& solver, int j_begin, int j_end, Visit&& visit) const {
    solver.ForEachUsedPair(j_begin, j_end, [&](int i, int j, Shift u, PairStatus status, Shift snap) {
      visit(i, j, u + offset(j) - offset(i), PublishedStatus(i, j, status, snap));
    });
  }
  // Brings pairs_snapped() up to date after Resolve() with `solve`: while
  // every offset is zero the published statuses are the solver's, and its
  // count is taken (O(frames)); otherwise revisits the pairs of the frames
  // from the first whose pair states changed (SolverReport::
  // first_changed_frame) or whose offset changed, all of them after a new
  // lattice. O(those pairs): an incremental update touches the new frame's.
  void CountSnappedPairs(const ConsistencySolver& solver, const SolverReport& solve);
  // Used pairs snapped in published coordinates (PublishedStatus).
  int pairs_snapped() const { return pairs_snapped_; }
  // Checks the published shifts for lattice-vector spikes.
  void CheckTemporal(const std::vector<Shift>& shifts, const std::vector<double>& timestamps_s);

  const std::optional<Lattice>& lattice() const { return lattice_; }
  // The hop test of the current lattice (none before one is found); give it
  // to the solver whenever Estimate() or Apply() returned true.
  const std::optional<HopTest>& hop_test() const { return hop_test_; }
  const std::vector<Shift>& reciprocal_peaks() const { return reciprocal_peaks_; }
  const LatticeOffsetReport& offsets() const { return offsets_; }
  const TemporalCheckReport& temporal() const { return temporal_; }

 private:
  bool enabled_;
  HopTolerances tolerances_;
  std::optional<Lattice> lattice_;
  std::optional<HopTest> hop_test_;
  std::vector<Shift> reciprocal_peaks_;  // indexed Bragg peaks, cycles/px
  int next_estimate_;
  std::vector<CoarsePairEvidence> coarse_;
  // Resolve's kept run correlations, by the runs' first frames and sizes
  // (the two halves of a run differ in their first frame): the runs' mean
  // relative position each was computed at, and its heights. One is reused
  // while the runs have moved by at most kRunReuseTolerancePx
  // (lattice_tracker.cpp) against each other; all go when the lattice
  // changes.
  struct KeptRunHeights {
    Shift relative;
    std::vector<double> heights;
  };
  std::map<std::tuple<int, int, int, int>, std::vector<KeptRunHeights>> run_heights_;
  std::size_t kept_run_heights_ = 0;  // entries in run_heights_, all keys
  LatticeOffsetReport offsets_;
  TemporalCheckReport temporal_;
  // CountSnappedPairs' state: per frame j, its pairs (i, j) snapped; the
  // offsets and whether a new lattice came since they were counted.
  std::vector<int> snapped_by_frame_;
  std::vector<Shift> counted_offsets_;
  bool lattice_changed_ = false;
  int pairs_snapped_ = 0;
};

}  // namespace livealign
