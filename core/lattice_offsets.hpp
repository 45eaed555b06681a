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
//    the two over a long series. At low dose no single pair's coarse peak is
//    clear; the frames on each side of the jump are then summed at their
//    positions and the two sums correlated (CoarseRunScore), which is clear
//    long before any pair is.
// When neither is available across a stage jump, the offset there is reported
// as not observable rather than guessed.
//
// Pure function of its inputs; no state, thread-compatible.

#include <functional>
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
  // Across a jump no coarse pair decides: up to this many frames on each
  // side are summed (CoarseRunScore). The run after the jump is used at 2,
  // 4, 8, ... frames, so a live series asks for a new correlation only when
  // its run has doubled.
  int run_frames = 32;
  // The run correlation decides when its height at the best lattice vector
  // is at least min_run_height, exceeds that at every other candidate by at
  // least min_run_margin and by min_run_margin_to_mismatch times what it
  // falls short of 1, and the runs' two halves (alternate frames) pick the
  // same vector. The margin is small because the content that pins the
  // offset is broad, and what limits it is mostly not noise (in 6 of 7
  // simulated jumps checked, both halves' margins were within 0.02 of the
  // whole runs'; in the seventh one half picked another vector): where the best translate
  // matches the other run no better than 1 - margin, window, overlap and
  // content have ranked the translates as much as position has. Simulated
  // perovskite series at 0.2 counts/px (blobs of 20-60 px, a 16 px cell; 30
  // jumps of 0.3-2.2 spacings at frame 80 of 160, seeds 7-12): where the run
  // correlation put the frames right, margin / (1 - height) was 1.3-18; where
  // it did not, 0.04-0.91.
  double min_run_height = 0.5;
  double min_run_margin = 0.03;
  double min_run_margin_to_mismatch = 1.0;
  // Candidate lattice vectors n_a a + n_b b with |n_a|, |n_b| <= this.
  int run_candidate_reach = 2;
};

// Two runs of frames on either side of a stage jump, at their pinned shifts,
// and the offsets to try on the second (CoarseRunScore).
struct CoarseRunQuery {
  std::vector<int> first, second;
  std::vector<Shift> first_shifts, second_shifts;
  std::vector<Shift> offsets;
};
// The correlation coefficient of the two runs' means at each offset (1 =
// the same content; Correlator::CoarseRunCorrelation); empty when it cannot
// be computed.
using CoarseRunScore = std::function<std::vector<double>(const CoarseRunQuery&)>;

struct StageJumpRecord {
  int frame = 0;      // first frame after the jump
  Shift jump_px;      // deviation from the temporal prediction
  bool lattice_offset_observable = false;  // coarse evidence decided it
  // The run correlation (CoarseRunScore) at the chosen lattice vector, and
  // the frames of the run after the jump it summed; 0 when not used.
  double run_height = 0;
  int run_frames_after = 0;
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
                                          const std::vector<double>& timestamps_s = {},
                                          const CoarseRunScore& runs = {});

}  // namespace livealign
