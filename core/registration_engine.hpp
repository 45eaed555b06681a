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
// Memory: the engine Puts every accepted frame into its FrameStore and keeps
// only the most recent EngineOptions::frame_cache_frames in RAM; an older
// frame is read back when its shift moved enough to be re-resampled into the
// average (at most a fixed number per update) or the precision stage needs
// it. Each frame's band-cropped spectrum stays in RAM. See cache_bytes(),
// frame_bytes(), mosaic_bytes() and store_bytes().

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/average_image.hpp"
#include "core/engine_options.hpp"
#include "core/frame.hpp"
#include "core/frame_store.hpp"
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

// Lattice found in the running average, real-space basis in px.
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
  // Verdict: valid = most frames consistent, inliers consistent to
  // well under a pixel, and no frame jumping by a lattice vector in time.
  bool valid = false;
  // False for a perfect lattice with no non-periodic content: the absolute
  // lattice offset cannot be pinned and the engine says so rather than guess.
  bool lattice_offset_observable = true;
  std::string verdict;  // one human-readable line with the evidence
};

// Image quality of the running average: resolution from the Fourier
// ring correlation of the even/odd half-set averages, SNR, information
// transfer, drift status and the stop-when-good decision. Frequencies are in
// cycles/px; the _A figures are set only when the pixel size is known (for
// non-square pixels a ring's Å figure is the mean of its x and y periods).
struct ImageQualityReport {
  int num_frames = 0;
  // FRC of the half-set averages on the common region; one entry per ring.
  std::vector<double> frc_frequency_cycles_per_px;
  std::vector<double> frc;
  std::vector<double> frc_noise_threshold;  // 3 sigma significance per ring
  std::vector<double> ssnr;                  // spectral SNR of the full average
  // "crossed", "not_reached" (better than Nyquist) or "no_signal" (no
  // resolution can be claimed, e.g. frames of pure noise).
  std::string frc_status = "no_signal";
  std::optional<double> resolution_cycles_per_px;       // FRC = 1/7
  std::optional<double> resolution_half_cycles_per_px;  // FRC = 0.5
  std::optional<double> resolution_A;
  double snr = 0;  // image SNR of the average, from the half-set FRC
  // Projection: frames needed for a 10 % finer resolution (SSNR grows in
  // proportion to the number of frames); nullopt when there is no signal to
  // extrapolate from.
  std::optional<double> next_resolution_cycles_per_px;
  std::optional<int> frames_for_next_resolution;
  // Highest spatial frequency with a significant structure peak in the power
  // spectrum, for the average and for a single (the latest) frame.
  std::optional<double> info_transfer_cycles_per_px;
  std::optional<double> info_transfer_A;
  std::optional<double> single_frame_info_transfer_cycles_per_px;
  std::optional<double> single_frame_info_transfer_A;
  // Drift over the last drift_window_frames: velocity, trend, settled.
  Shift drift_px_per_frame;
  std::optional<Shift> drift_A_per_s;
  std::string drift_trend = "unknown";  // slowing, steady, speeding
  bool drift_settled = false;
  int drift_settled_since_frame = -1;   // -1: not settled
  // Stop-when-good (EngineOptions targets).
  bool good = false;
  bool stop = false;  // good, or max_frames reached
  std::string reason;
  double compute_ms = 0;
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
  // Not correlated: the frames' predicted overlap was below
  // EngineOptions::min_overlap_fraction (has_peak is then false).
  bool no_overlap = false;
};

struct StageTimings {
  double preprocess_ms = 0;  // window + FFT + crop of the new frame
  double correlate_ms = 0;   // all new pairs
  double solve_ms = 0;
  double refine_ms = 0;      // precision stage
  double average_ms = 0;
  double total_ms = 0;
  int pairs = 0;             // pairs with a peak in this update (the overlap gate skips others)
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
};

// The used shift matrices R_ij (the picture that shows a registration is
// physically consistent). k*k row-major; entry (i, j) is j_from_i; NaN where
// no measurement; status 0 missing, 1 inlier, 2 rejected, 3 snapped, 4 not
// correlated because the frames do not overlap enough (ShiftMatrices::Status).
struct ShiftMatrixSnapshot {
  int k = 0;
  std::vector<double> x;
  std::vector<double> y;
  std::vector<std::uint8_t> status;
};

class RegistrationEngine {
 public:
  // Throws std::invalid_argument when options.Check() fails, the shape is
  // empty or the store is null. Frame k of the series is Put into `store` as
  // (k, channel); the default store keeps every frame in RAM.
  RegistrationEngine(const EngineOptions& options, Shape frame_shape,
                     std::shared_ptr<FrameStore> store = std::make_shared<MemoryFrameStore>(),
                     std::string channel = "");
  ~RegistrationEngine();
  RegistrationEngine(const RegistrationEngine&) = delete;
  RegistrationEngine& operator=(const RegistrationEngine&) = delete;

  // Adds the next frame (it becomes frame num_frames()) and Puts it into the
  // store. Throws std::invalid_argument on a shape mismatch or non-finite
  // pixels, and what the store's Put throws; the engine is then unchanged.
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
  // Computes the image-quality figures from the current average (tens of ms at
  // 512^2: call it rate-limited while frames stream in, and at the end).
  ImageQualityReport ImageQuality() const;
  // Copy of the most recently added frame (raw, unshifted); empty when none.
  Frame LatestFrame() const;

  // Shape of one pair's band-limited correlation map (its inverse FFT): with
  // one forward FFT per frame, the FFT floor of an update.
  Shape correlation_map_shape() const;

  // Bytes of cached band spectra; of frames kept in RAM by the averager (its
  // bounded cache); of the average's running sums (the mosaic canvas); and
  // what the frame store holds in RAM (all frames for a MemoryFrameStore).
  std::size_t cache_bytes() const;
  std::size_t frame_bytes() const;
  std::size_t mosaic_bytes() const;
  std::size_t store_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace livealign
