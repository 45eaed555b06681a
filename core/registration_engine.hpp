#pragma once
// The incremental all-pairs registration engine: frames are added one at a
// time (exactly as the live daemon feeds them); each new frame is correlated
// against every earlier one, the growing consistency system is re-solved, and
// the shift-corrected average is kept up to date.
//
// Thread-safety: not synchronised. One thread calls AddFrame/Finish and reads
// results; the engine uses its own worker pool internally.
//
//   RegistrationEngine engine(options, Shape{512, 512});
//   for (Frame& f : frames) engine.AddFrame(std::move(f));
//   engine.Finish();                         // final full solve + precision pass
//   for (const FrameState& s : engine.frames()) ... s.shift ...
//   AverageImage avg = engine.Average();
//
// Memory: the engine keeps every frame (the average is recomputed when earlier
// shifts move) plus each frame's band-cropped spectrum: see cache_bytes() and
// frame_bytes().

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/average_image.hpp"
#include "core/engine_options.hpp"
#include "core/frame.hpp"
#include "core/shift.hpp"

namespace livealign {

// The current estimate for one frame.
struct FrameState {
  frame_id_t index = kInvalidFrameId;
  double timestamp_s = 0;   // NaN when unknown
  Shift shift;              // s_i, frame 0 = (0, 0); convention in core/shift.hpp
  double residual_px = 0;   // robust RMS residual of this frame's inlier pairs
  bool flagged = false;     // no consistent set of pairs: left out of the average
};

// Lattice found in the running average (issue 4), real-space basis in px.
struct LatticeInfo {
  bool found = false;
  Shift a_px;
  Shift b_px;
  // Indexed Bragg reflections, (x, y) in cycles/px, for display.
  std::vector<Shift> reciprocal_cycles_per_px;
};

// Quality figures of the registration as a whole.
struct EngineQuality {
  int num_frames = 0;
  double consistency_rms_px = 0;      // RMS residual of inlier pairs
  double rejected_pair_fraction = 0;  // pairs not used (outliers or no peak)
  int flagged_frames = 0;
  int pairs_snapped = 0;              // pairs corrected by a lattice vector
  double median_cycle_error_px = 0;   // median triangle error of inlier triangles
  // Least-squares drift rate over the recent frames; nullopt without
  // timestamps or with fewer than two frames.
  std::optional<Shift> drift_rate_px_per_s;
  std::optional<Shift> drift_rate_A_per_s;  // also needs the pixel size
  LatticeInfo lattice;
  // Cycle (triangle) consistency of the inlier pairs.
  double max_cycle_error_px = 0;
  int cycles_equal_to_lattice_vector = 0;  // triangles that expose a hop
  // Frames the hop-free coarse stage moved by a whole lattice vector.
  int frames_moved_by_lattice_offset = 0;
  // Frames whose lattice offset clear coarse (Bragg-free) evidence decided.
  int frames_decided_by_coarse = 0;
  // Real stage jumps (deviations from smooth drift that are not a lattice
  // vector), and how many of them the coarse stage could pin.
  int stage_jumps_unobservable = 0;
  // Frames whose shift jumps by a lattice vector against both time neighbours
  // (temporal check); real stage jumps are steps and are counted apart.
  std::vector<int> temporal_lattice_spikes;
  int stage_jumps = 0;
  std::vector<int> stage_jump_frames;
  // Verdict (issue 4): valid = most frames consistent, inliers consistent to
  // well under a pixel, and no frame jumping by a lattice vector in time.
  bool valid = false;
  // False for a perfect lattice with no non-periodic content: the absolute
  // lattice offset cannot be pinned and the engine says so rather than guess.
  bool lattice_offset_observable = true;
  std::string verdict;  // one human-readable line with the evidence
};

// One pair's measurement and what the solver made of it (diagnostics, and the
// wrong-pair statistics of the crystal benchmark).
struct PairRecord {
  int i = 0;
  int j = 0;
  bool has_peak = false;
  Shift brightest_j_from_i;  // the correlation's highest peak
  Shift used_j_from_i;       // the candidate (and lattice snap) the solver used
  bool inlier = false;
  bool snapped = false;
};

struct StageTimings {
  double preprocess_ms = 0;  // window + FFT + crop of the new frame
  double correlate_ms = 0;   // all new pairs
  double solve_ms = 0;
  double refine_ms = 0;      // precision stage
  double average_ms = 0;
  double total_ms = 0;
  int pairs = 0;             // pairs correlated in this update
};

struct UpdateReport {
  frame_id_t index = kInvalidFrameId;
  StageTimings timings;
};

// The used shift matrices R_ij (the picture that shows a registration is
// physically consistent). k*k row-major; entry (i, j) is j_from_i; NaN where
// no measurement; status 0 missing, 1 inlier, 2 rejected, 3 snapped.
struct ShiftMatrixSnapshot {
  int k = 0;
  std::vector<double> x;
  std::vector<double> y;
  std::vector<std::uint8_t> status;
};

class RegistrationEngine {
 public:
  // Throws std::invalid_argument when options.Check() fails or the shape is empty.
  RegistrationEngine(const EngineOptions& options, Shape frame_shape);
  ~RegistrationEngine();
  RegistrationEngine(const RegistrationEngine&) = delete;
  RegistrationEngine& operator=(const RegistrationEngine&) = delete;

  // Adds the next frame (it becomes frame num_frames()); the engine keeps it.
  // Throws std::invalid_argument on a shape mismatch or non-finite pixels;
  // the engine is then unchanged.
  UpdateReport AddFrame(Frame frame);

  // Full re-solve from scratch and the precision pass over every frame; call
  // at the end of a series (AddFrame may still follow).
  UpdateReport Finish();

  int num_frames() const;
  Shape frame_shape() const;
  const EngineOptions& options() const;
  const std::vector<FrameState>& frames() const;
  EngineQuality quality() const;
  AverageImage Average() const;
  ShiftMatrixSnapshot Matrices() const;
  // Every pair i < j, ordered by j then i.
  std::vector<PairRecord> Pairs() const;

  // Bytes of cached band spectra, and of kept frames.
  std::size_t cache_bytes() const;
  std::size_t frame_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace livealign
