#pragma once
// Pins each frame's absolute lattice offset after the consistency solve.
//
// With lattice snapping, the pairwise solution is only determined modulo the
// lattice: a frame (or a run of frames) can sit a whole lattice vector away
// and every pair still looks consistent. Two kinds of evidence fix this:
//  - temporal continuity: drift is smooth, so a frame that deviates from the
//    prediction of its predecessors by (nearly) a lattice vector has hopped,
//    and one that deviates by neither (nearly) zero nor a lattice vector has
//    jumped. "Nearly zero" is the hop test's tolerance and, once the series
//    has shown how steady it is, also a multiple of its recent deviations:
//    a jump whose lattice translate lies near the prediction leaves only a
//    deviation of a few pixels, and is a jump all the same;
//  - the coarse, hop-free stage: correlations below the first Bragg ring see
//    only non-periodic content (defects, blobs, edges); when they are clear
//    they decide the offset across a real stage jump, where continuity
//    cannot help. Elsewhere continuity decides: it is the more reliable of
//    the two over a long series.
// When neither is available across a stage jump, the offset there is reported
// as not observable rather than guessed.
//
// Pure function of its inputs; no state, thread-compatible.

#include <vector>

#include "core/hop_test.hpp"
#include "core/lattice.hpp"
#include "core/shift.hpp"

namespace livealign {

// A coarse (Bragg-free) correlation of the pair (i, j), i < j.
struct CoarsePairEvidence {
  int i = 0;
  int j = 0;
  Shift j_from_i;
  // Normalised correlation of the coarse peak (1 = identical content): the
  // clarity of the evidence. Measured on the simulated perovskite: 0.7-0.9
  // with non-periodic content at >= 1 count/px, 0.3-0.4 at 0.2-0.3 counts/px
  // (right only ~60 % of the time), ~0.1 for a perfect lattice.
  double height = 0;
};

// The tolerances are the hop test's (core/hop_test.hpp): a deviation from
// the temporal prediction within HopTest::hop_px() is smooth drift, one the
// hop test calls a hop is a unit-cell hop, and a coarse pair pins an offset
// when HopTest::CoarseSite() accepts its residual.
struct LatticeOffsetOptions {
  // Coarse peaks below this normalised height are too weak to trust.
  double min_coarse_height = 0.5;
  // Coarse pairs that must agree on the lattice vector before it is applied.
  int min_coarse_agreeing = 2;
};

struct StageJumpRecord {
  int frame = 0;      // first frame after the jump
  Shift jump_px;      // deviation from the temporal prediction
  bool lattice_offset_observable = false;  // coarse evidence decided it
};

struct LatticeOffsetReport {
  // offsets[k] is the lattice vector to add to the solver's shift of frame k.
  std::vector<Shift> offsets;
  int frames_moved = 0;              // frames with a non-zero offset
  // Frames with clear coarse evidence (agreeing coarse pairs): it decides
  // the offset at a stage jump, and the count says whether the absolute
  // offset is observable at all.
  int frames_decided_by_coarse = 0;
  std::vector<StageJumpRecord> jumps;
};

// `hops`: the lattice tracker's hop test (its lattice and tolerances).
// Requires: flagged.size() == solver_shifts.size(); coarse pairs index frames
// within range; timestamps_s empty or of the same size. A flagged frame gets
// the lattice vector that puts it nearest the interpolation of its unflagged
// neighbours' final positions.
//
// The temporal prediction of frame k is constant velocity over up to 8
// trusted frames since the last jump, in time
// (timestamps_s, when every one is finite and they increase; else the frame
// index): frames lost on the way leave gaps whose drift a per-frame
// prediction would take for a hop or a jump.
LatticeOffsetReport ResolveLatticeOffsets(const std::vector<Shift>& solver_shifts,
                                          const std::vector<bool>& flagged, const HopTest& hops,
                                          const std::vector<CoarsePairEvidence>& coarse,
                                          const LatticeOffsetOptions& options = {},
                                          const std::vector<double>& timestamps_s = {});

}  // namespace livealign
