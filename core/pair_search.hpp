#pragma once
// Pair search: which earlier frames a new frame is correlated with, and where
// each pair's peak is looked for. Three decisions, in this order:
//  - the overlap gate: only earlier frames the new frame is predicted to
//    overlap by at least EngineOptions::min_overlap_fraction (the newest pair
//    always, so the chain of overlapping pairs places every frame);
//  - the prediction window (EngineOptions::predicted_search): once a lattice
//    is known and the velocity is, each pair is searched only within a
//    fraction of a lattice spacing of the constant-velocity prediction, where
//    no other lattice translate fits, so no pair can hop;
//  - the peak-height stage-jump test: a stage jump leaves no real peak in the
//    window, so the newest pair's windowed peak must keep kJumpHeightRatio of
//    an unrestricted search's, or (unless the unrestricted maxima of the two
//    next-newest pairs both lie in their windows: a noise peak won the
//    newest pair's search) the frame is searched without the window.
//    This only chooses the search; the stage jumps the quality reports are
//    those of the lattice tracker (core/lattice_tracker.hpp).
// Also the coarse (Bragg-free) correlations the lattice tracker pins lattice
// offsets with.
//
// Not synchronised: the engine thread calls it; the correlations run on the
// given pool.

#include <optional>
#include <vector>

#include "core/correlator.hpp"
#include "core/lattice.hpp"
#include "core/lattice_offsets.hpp"
#include "core/registration_result.hpp"
#include "core/shift.hpp"
#include "core/thread_pool.hpp"

namespace livealign {

struct PairSearchOptions {
  double min_overlap_fraction = 0.75;  // EngineOptions::min_overlap_fraction
  bool predicted_search = true;        // EngineOptions::predicted_search
  double max_shift_px = 0;             // EngineOptions::max_shift_px (0: a quarter frame)
};

struct NewFramePairs {
  // pairs[i] is (i, k) for every i < k; gated pairs have no candidates.
  std::vector<PairMeasurement> pairs;
  // no_overlap[i]: (i, k) was not correlated (overlap gate).
  std::vector<bool> no_overlap;
  // The pairs were searched in the prediction window.
  bool used_prediction = false;
};

// Fraction of the frame area that frames at shifts a and b have in common.
double OverlapFraction(Shape shape, Shift a, Shift b);

// Constant-velocity prediction of s_k when the last two frames are unflagged
// and k >= 3 (`velocity_known`), else the last frame's shift (or zero for the
// first frame). The velocity spans the unflagged run ending at frame k - 1, up
// to 8 frames; it is per second of timestamp when those timestamps and
// `new_timestamp_s` are finite and increasing (frames lost on the way leave
// gaps that a per-frame velocity would mispredict by the gap times the
// drift), else per frame.
Shift PredictNewShift(const std::vector<FrameState>& frames, double new_timestamp_s,
                      bool* velocity_known);

// The partners of new frame k = frames.size() that pass the overlap gate.
std::vector<int> OverlapPartners(Shape shape, const std::vector<FrameState>& frames,
                                 Shift predicted, double min_overlap_fraction);

// Correlates new frame k = frames.size() (already added to `correlator`,
// taken at `new_timestamp_s`) with its partners. `lattice`: the current
// lattice estimate, if any.
NewFramePairs SearchNewFramePairs(const Correlator& correlator, ThreadPool& pool, Shape shape,
                                  const std::vector<FrameState>& frames, double new_timestamp_s,
                                  const std::optional<Lattice>& lattice,
                                  const PairSearchOptions& options);

// The coarse stage's low-pass cut-off: below the first Bragg ring of
// `lattice`, or a fixed low cut-off before a lattice is known.
double CoarseCutoffCyclesPerPx(const std::optional<Lattice>& lattice);

// Coarse (Bragg-free) correlations of frame k with its kCoarsePartners
// predecessors, below the first Bragg ring of `lattice` (or a fixed low
// cut-off before a lattice is known).
std::vector<CoarsePairEvidence> SearchCoarsePairs(const Correlator& correlator, ThreadPool& pool,
                                                  int k, const std::optional<Lattice>& lattice);

}  // namespace livealign
