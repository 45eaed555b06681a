#pragma once
// The one result value of the registration engine: what AddFrame and Finish
// return and what the daemon, the file writer (adapters/registration_outputs)
// and the web page consume. A value: it does not change when the engine goes
// on, and it is safe to hand to another thread.
//
// Cost. Everything in it is O(k) per update (the frames, the quality, the
// timings) except the pair list and the dense shift matrix, which are O(k^2): at
// the k = 5000 frames of a long session they are hundreds of MB and take
// longer to build than an update. They are therefore built only when the
// caller asks for them (ResultRequest, on AddFrame/Finish or on
// RegistrationEngine::Snapshot) and shared immutably (shared_ptr<const>), so
// copying a result never copies them. Without a request they are null.
//
// Not here, on purpose: the average (an image, RegistrationEngine::Average())
// and the image quality (tens of ms at 512^2, RegistrationEngine::
// ImageQuality(), which the daemon rate-limits): both are explicit
// computations a caller does when it needs them, not by-products of an update.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/frame.hpp"
#include "core/shift.hpp"
#include "core/shift_matrix.hpp"
#include "core/shift_matrix_view.hpp"

namespace livealign {

// The current estimate for one frame.
struct FrameState {
  frame_id_t index = kInvalidFrameId;
  double timestamp_s = 0;   // NaN when unknown
  Shift shift;              // s_i, frame 0 = (0, 0); convention in core/shift.hpp
  double residual_px = 0;   // robust RMS residual of this frame's inlier pairs
  bool flagged = false;     // no consistent set of pairs: left out of the average
};

// Lattice found in the running average, real-space basis in px.
struct LatticeInfo {
  bool found = false;
  Shift a_px;
  Shift b_px;
  // Indexed Bragg reflections, (x, y) in cycles/px, for display.
  std::vector<Shift> reciprocal_cycles_per_px;
};

// Quality figures of the registration as a whole (core/engine_quality.hpp
// assembles them once per update).
struct EngineQuality {
  int num_frames = 0;
  double consistency_rms_px = 0;      // RMS residual of inlier pairs
  double rejected_pair_fraction = 0;  // pairs not used (outliers or no peak)
  int flagged_frames = 0;
  int pairs_snapped = 0;              // pairs corrected by a lattice vector
  double median_cycle_error_px = 0;   // median triangle error of inlier triangles
  // The last solve: converged within its iteration bound, and its one-line
  // account (iterations, threshold, ...).
  bool solver_converged = false;
  std::string solver_message;
  // Least-squares drift rate over the recent frames; nullopt without
  // timestamps or with fewer than two frames.
  std::optional<Shift> drift_rate_px_per_s;
  std::optional<Shift> drift_rate_A_per_s;  // also needs the pixel size
  LatticeInfo lattice;
  // Cycle (triangle) consistency of the inlier pairs.
  double max_cycle_error_px = 0;
  int cycles_equal_to_lattice_vector = 0;  // triangles that expose a hop
  // Frames whose lattice offset (core/lattice_offsets.hpp: temporal
  // continuity, or coarse evidence across a stage jump) is a non-zero
  // lattice vector.
  int frames_moved_by_lattice_offset = 0;
  // Frames with clear coarse (Bragg-free) evidence: it decides the lattice
  // offset across a stage jump, and most frames having it makes the absolute
  // offset observable.
  int frames_decided_by_coarse = 0;
  // Real stage jumps (deviations from smooth drift that are not a lattice
  // vector, found by the lattice tracker: core/lattice_tracker.hpp), and how
  // many of them the coarse stage could not pin.
  int stage_jumps_unobservable = 0;
  // Frames whose shift jumps by a lattice vector against both time neighbours
  // (temporal check of the published shifts).
  std::vector<int> temporal_lattice_spikes;
  int stage_jumps = 0;
  std::vector<int> stage_jump_frames;
  // Verdict: valid = most frames consistent, inliers consistent to
  // well under a pixel, and no frame jumping by a lattice vector in time.
  bool valid = false;
  // False for a perfect lattice with no non-periodic content: the absolute
  // lattice offset cannot be pinned and the engine says so rather than guess.
  bool lattice_offset_observable = true;
  std::string verdict;  // one human-readable line with the evidence
};

// One pair's measurement and what the solver made of it (diagnostics, and the
// wrong-pair statistics of the crystal benchmark), in final coordinates.
struct PairRecord {
  int i = 0;
  int j = 0;
  bool has_peak = false;
  Shift brightest_j_from_i;  // the correlation's highest peak
  // The candidate the solver chose, as measured (the brightest when none
  // was chosen), and the value used in final coordinates: the candidate plus
  // the solver's hop correction plus the two frames' lattice offset
  // difference. kSnapped means these two differ by a lattice vector.
  Shift measured_j_from_i;
  Shift used_j_from_i;
  // kNoOverlap: not correlated, the frames' predicted overlap was below
  // EngineOptions::min_overlap_fraction (has_peak is then false).
  PairStatus status = PairStatus::kMissing;
  bool inlier() const { return status == PairStatus::kInlier || status == PairStatus::kSnapped; }
};

// Wall time of each stage of one update; the stages do not overlap, so they
// add up to total_ms but for the bookkeeping between them. preprocess_ms is
// RegistrationEngine::PrepareFrame's, which may have run on another thread
// before the update (overlapping the previous one).
struct StageTimings {
  double store_ms = 0;       // FrameStore::Put: a journal append, or a copy into RAM
  double preprocess_ms = 0;  // window + FFT + crop of the new frame
  double correlate_ms = 0;   // all new pairs, and the coarse (Bragg-free) pairs
  double solve_ms = 0;       // consistency solver, with adopting a background re-solve
  double lattice_ms = 0;     // lattice offsets, temporal check, lattice (re-)estimate
  double average_ms = 0;     // the averager: new frame, re-resampled frames
  double refine_ms = 0;      // precision stage
  double total_ms = 0;
  int pairs = 0;             // pairs with a peak in this update (the overlap gate skips others)

  // Stage by stage, for totals over updates.
  StageTimings& operator+=(const StageTimings& o) {
    store_ms += o.store_ms;
    preprocess_ms += o.preprocess_ms;
    correlate_ms += o.correlate_ms;
    solve_ms += o.solve_ms;
    lattice_ms += o.lattice_ms;
    average_ms += o.average_ms;
    refine_ms += o.refine_ms;
    total_ms += o.total_ms;
    pairs += o.pairs;
    return *this;
  }
};

struct UpdateReport {
  frame_id_t index = kInvalidFrameId;
  StageTimings timings;
  // True when the new pairs were searched only around the drift prediction
  // (EngineOptions::predicted_search); false at the start of a series, without
  // a lattice, or after a detected stage jump.
  bool predicted_search = false;
  // This update ran a full re-solve from scratch, or applied one that had
  // run in the background on the first `background_resolve_frames` frames.
  bool full_resolve = false;
  int background_resolve_frames = 0;
  // A full re-solve was running in the background when this update's solve
  // returned (it competes with the update for the cores).
  bool background_resolve_running = false;
  // This update re-estimated the lattice (from the average or the raw frame).
  bool lattice_estimated = false;
  // Frames the precision stage refined live in this update (its budget:
  // EngineOptions::live_refine_per_update, or live_refine_per_update_long
  // on a series longer than live_refine_long_after_frames).
  int refined_frames = 0;
  // The average's mosaic canvas grew in this update (its running sums were
  // reallocated and copied: O(canvas), the cost of average_ms then).
  bool mosaic_grown = false;
};

// The O(k^2) parts a caller wants with a result, and the bounded views of
// the shift matrix (core/shift_matrix_view.hpp), which are O(stored pairs)
// to build and O(1) in size.
struct ResultRequest {
  bool pairs = false;         // RegistrationResult::pairs
  bool shift_matrix = false;  // RegistrationResult::shift_matrix
  bool shift_matrix_view = false;  // RegistrationResult::shift_matrix_view
  // RegistrationResult::shift_matrix_window; the engine throws
  // std::invalid_argument (ShiftMatrixWindowError) for one not inside the frames.
  std::optional<ShiftMatrixWindowRequest> shift_matrix_window = std::nullopt;
  static ResultRequest Everything() { return {true, true, true, std::nullopt}; }
  static ResultRequest Pairs() { return {true, false, false, std::nullopt}; }
  static ResultRequest DenseShiftMatrix() { return {false, true, false, std::nullopt}; }
  static ResultRequest ShiftMatrixOverview() { return {false, false, true, std::nullopt}; }
  // What shift_matrix.png is drawn from: the dense matrix up to
  // kDenseShiftMatrixMaxFrames frames (32 MB of doubles at 1024), the
  // overview beyond, so memory and time stay bounded at k = 5000.
  static ResultRequest ShiftMatrixPicture(int k) {
    return k <= kDenseShiftMatrixMaxFrames ? DenseShiftMatrix() : ShiftMatrixOverview();
  }
};

struct RegistrationResult {
  // Every frame so far, shifts in final coordinates (solver shift + lattice
  // offset, or the precision stage's where it is trusted).
  std::vector<FrameState> frames;
  EngineQuality quality;
  // The AddFrame or Finish that produced this result.
  UpdateReport update;
  // Every pair i < j, ordered by j then i; null unless requested.
  std::shared_ptr<const std::vector<PairRecord>> pairs;
  // The used shift matrices in final coordinates; null unless requested.
  std::shared_ptr<const ShiftMatrix> shift_matrix;
  // The overview and the requested window of it, same coordinates; null
  // unless requested.
  std::shared_ptr<const ShiftMatrixView> shift_matrix_view;
  std::shared_ptr<const ShiftMatrixView> shift_matrix_window;

  int num_frames() const { return static_cast<int>(frames.size()); }
};

}  // namespace livealign
