#pragma once
// A deterministic simulated STEM microscope: an analytic crystal specimen that
// drifts under the beam, imaged at a chosen electron dose with Poisson noise.
//
// The specimen is a continuous function of position (Gaussian atomic columns
// on a lattice, optional vacancies, broad non-periodic blobs, a thickness
// gradient and a background), so a sub-pixel shift is exact: frame i at pixel
// p = (x = col, y = row) shows specimen(p - s_i), where s_i = TrueShift(i)
// follows the convention of core/shift.hpp (a feature at p in frame 0 is at
// p + s_i in frame i; s_0 = (0, 0)). Pixels are point samples at pixel centres.
//
// Counts: the noise-free intensity is multiplied by one fixed factor, chosen
// so that frame 0's mean is `dose_counts_per_px` (a constant beam current);
// later frames see the same factor, so their means stay close to the dose
// (they differ only by the specimen content that drifts in and out of view).
// NoiseFreeFrame() returns these expected counts; NextFrame() returns a
// Poisson sample of them (or the expected counts when `poisson_noise` is off).
//
// Determinism: everything (lattice origin, vacancies, blobs, drift, noise) is
// derived from the seed with counter-based hashing, so frame i is the same no
// matter in which order frames or shifts are requested.
//
// Thread-safety: none. Even const methods fill an internal drift cache, so a
// Simulator must be used from one thread at a time.
//
//   SimulatorOptions options;            // 512^2 perovskite, dose 0.2
//   options.dose_counts_per_px = 0.08;
//   Simulator microscope(options, /*seed=*/7);
//   Frame f0 = microscope.NextFrame();   // frame 0, shift (0, 0)
//   Frame f1 = microscope.NextFrame();
//   Shift s1 = microscope.TrueShift(1);  // ground truth for the registration

#include <cstdint>
#include <string>
#include <vector>

#include "core/frame.hpp"
#include "core/shift.hpp"

namespace livealign {

enum class SpecimenLattice {
  kSquare,      // one column per square cell
  kHexagonal,   // triangular (close-packed) net of columns, 60 degrees apart
  kPerovskite,  // ABO3 [001]: A at the cell corner, B at the centre, O on the
                // edge midpoints (O weak or absent by default)
};

// A sudden stage jump: from frame `frame` on, every shift gains `jump`.
struct StageJump {
  int frame = 0;
  Shift jump;
};

struct SimulatorOptions {
  Shape shape{512, 512};

  // ---- Specimen ----
  SpecimenLattice lattice = SpecimenLattice::kPerovskite;
  // Default: SrTiO3-like a = 3.905 Å at 0.244 Å/px, i.e. 16 px per cell and 32
  // cells across a 512^2 frame: atomic resolution with well separated columns.
  double lattice_spacing_px = 16.0;
  // In-plane rotation of the lattice, degrees (counter-clockwise in x/y).
  double rotation_deg = 7.0;
  // Gaussian column standard deviation, px (about 0.45 Å at the default
  // sampling: a typical HAADF probe-convolved column).
  double column_sigma_px = 1.8;
  // Peak heights (arbitrary units). A-site 1; B-site weaker, so the two
  // sublattices are distinguishable; O usually invisible in HAADF.
  double a_site_intensity = 1.0;
  double b_site_intensity = 0.55;
  double o_site_intensity = 0.0;  // > 0 adds the O columns (perovskite only)
  // Fraction of columns missing at random (fixed in the specimen, so a vacancy
  // drifts with the lattice).
  double vacancy_fraction = 0.02;
  // Broad non-periodic content: contamination blobs of random position (over
  // the frame-0 field of view +- 25 %), width and height.
  int num_blobs = 3;
  double blob_sigma_min_px = 20.0;
  double blob_sigma_max_px = 60.0;
  double blob_amplitude = 0.25;  // peak height, same units as a_site_intensity
  // Column intensity changes linearly by this fraction across one frame width
  // (thickness wedge) along `thickness_gradient_angle_deg`; the factor is
  // clamped at 0, so a large value makes a vacuum edge.
  double thickness_gradient = 0.3;
  double thickness_gradient_angle_deg = 30.0;
  // Constant background, same units.
  double background = 0.1;
  // true: no vacancies, blobs or thickness gradient — a perfect lattice with
  // no non-periodic content (the worst case for unit-cell hops).
  bool perfect_lattice = false;

  // ---- Drift (the three models add up) ----
  // Linear drift: the starting velocity, px per frame.
  Shift initial_velocity_px_per_frame{0.35, -0.2};
  // The default velocity's direction at `px_per_frame` (the benchmarks'
  // --drift-px-per-frame). Throws std::invalid_argument unless >= 0.
  static Shift DefaultDriftAt(double px_per_frame);
  // Smooth random walk: each frame the velocity gains a Gaussian acceleration
  // of this standard deviation (px/frame^2, per axis) and relaxes towards the
  // initial velocity by `velocity_relaxation` (0 = free random walk in
  // velocity, 1 = white acceleration only). 0 disables the random part.
  double random_acceleration_px = 0.03;
  double velocity_relaxation = 0.1;
  // Sudden stage jumps, any number, any order.
  std::vector<StageJump> jumps;
  // From this frame on the drift (linear + random walk) stops: the shift stays
  // at its value at this frame (jumps still apply). -1 = never stops.
  int drift_stops_at_frame = -1;

  // ---- Acquisition ----
  double dose_counts_per_px = 0.2;  // mean counts per pixel of frame 0
  bool poisson_noise = true;        // false: frames are the expected counts
  double frame_time_s = 0.5;        // timestamp of frame i = start + i * this
  double start_time_s = 0.0;

  // Returns false and explains in *error when an option is out of range.
  bool Check(std::string* error) const;
};

class Simulator {
 public:
  // Throws std::invalid_argument when options.Check() fails.
  Simulator(const SimulatorOptions& options, std::uint64_t seed);

  // The next frame of the series (first call: frame 0), with header index,
  // timestamp and shape filled in.
  Frame NextFrame();
  // Index of the frame NextFrame() will return.
  int next_index() const { return next_index_; }

  // Expected counts of frame `index` (noise-free), header filled as NextFrame.
  // Requires: index >= 0 (throws std::invalid_argument otherwise).
  Frame NoiseFreeFrame(int index) const;
  // Noisy frame `index`; identical to what NextFrame() gives for that index.
  Frame NoisyFrame(int index) const;
  // Ground-truth shift s_index. Requires: index >= 0.
  Shift TrueShift(int index) const;
  double Timestamp(int index) const;
  // Scan feedback: frames rendered from now on have their field of view moved
  // by this, so frame i shows the shift TrueShift(i) - offset (a feature at p
  // appears at p - offset); TrueShift stays the specimen's drift.
  void set_field_of_view_offset_px(Shift offset) { field_of_view_offset_px_ = offset; }
  Shift field_of_view_offset_px() const { return field_of_view_offset_px_; }

  // Real-space lattice vectors in px (x = col, y = row) after rotation. For
  // the perovskite, a and b span the ABO3 unit cell.
  Shift lattice_a_px() const { return lattice_a_; }
  Shift lattice_b_px() const { return lattice_b_; }
  // Counts per unit of specimen intensity (fixed at construction).
  double counts_per_intensity() const { return counts_per_intensity_; }
  const SimulatorOptions& options() const { return options_; }

 private:
  struct Column {
    double u, v;        // fractional position in the cell
    double intensity;
    int site;           // index of the site in the basis, for vacancy hashing
  };
  struct Blob {
    double x, y, sigma, amplitude;
  };

  // Renders specimen intensity (not counts) shifted by `shift` into out.
  void Render(Shift shift, float* out) const;
  void ExtendDrift(int index) const;

  SimulatorOptions options_;
  std::uint64_t seed_;
  int next_index_ = 0;
  Shift lattice_a_, lattice_b_;
  Shift origin_;  // specimen position of the lattice origin
  std::vector<Column> basis_;
  std::vector<Blob> blobs_;
  double counts_per_intensity_ = 1.0;
  Shift field_of_view_offset_px_;
  // Drift cache: drift_[i] is the continuous (linear + random walk) part of
  // s_i, velocity_ the velocity after the last cached frame.
  mutable std::vector<Shift> drift_;
  mutable Shift velocity_;
};

// Frames, ground truth and geometry of a simulated series.
struct SimulatedSeries {
  std::vector<Frame> frames;             // noisy (or noise-free) frames
  std::vector<Frame> noise_free_frames;  // expected counts; empty unless asked
  std::vector<Shift> true_shifts;        // s_i
  std::vector<double> timestamps_s;
  Shift lattice_a_px, lattice_b_px;
};

// Simulates frames 0 .. num_frames-1. Throws std::invalid_argument on bad
// options or num_frames < 0.
SimulatedSeries Simulate(const SimulatorOptions& options, int num_frames, std::uint64_t seed,
                         bool keep_noise_free = false);

// Cramér–Rao lower bound on the standard deviation of a translation estimate
// from ONE Poisson frame whose expected counts per pixel are `lambda` (e.g.
// Simulator::NoiseFreeFrame), when the noise-free image itself is known:
//   sigma_x^2 = 1 / sum_p (d lambda / d x)^2 / lambda,  likewise y.
// (The Fisher information of a Poisson pixel for a shift is (dλ/dx)^2/λ; the
// x-y cross term is ignored, which is exact for images symmetric enough that
// it vanishes and otherwise gives the bound of each axis with the other known.)
// Derivatives are fourth-order central differences, so the outermost two
// pixels on each side are not used; pixels with lambda <= 0 carry no
// information and are skipped. Registering two equally noisy frames against
// each other is sqrt(2) worse than this bound. Infinity when there is no
// gradient; throws std::invalid_argument for frames smaller than 5 x 5.
struct ShiftPrecisionBound {
  double sigma_x_px = 0;
  double sigma_y_px = 0;
};
ShiftPrecisionBound CramerRaoBound(FrameView expected_counts);

}  // namespace livealign
