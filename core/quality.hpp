#pragma once
// Quality figures for a drift-corrected average: Fourier ring correlation of
// two half-set averages (resolution, spectral SNR), the information limit from
// Bragg/structure peaks in one image's power spectrum, the drift status from
// the shift history, and a stop rule combining them.
//
// Frequencies are in cycles per pixel (0.5 = Nyquist); x is the column, y the
// row. Convert to Å with the pixel size (PeriodA / RingFrequencyToA below).
// All functions are pure (no state) and thread-safe, except
// DriftSettledTracker, which must be used from one thread at a time.

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/frame.hpp"
#include "core/shift.hpp"

namespace livealign {

// ---------------------------------------------------------------------------
// Pixel size and unit conversion.

// Pixel size in Å per axis (scan pixels are often not square).
struct PixelSizeA {
  double y = 1.0;
  double x = 1.0;
};

// Period in Å of the spatial frequency (fx, fy) given in cycles/px along x and
// y: 1 / |(fx / pixel_size.x, fy / pixel_size.y)|. Infinity for (0, 0).
double PeriodA(double fx_cycles_per_px, double fy_cycles_per_px, PixelSizeA pixel_size);

// A ring of radius f cycles/px (as in the FRC, which bins frequencies in pixel
// units) is an ellipse in physical units when pixels are not square, so its
// resolution is given along both axes; mean_A is their arithmetic mean (the
// single figure to show; equal to both for square pixels).
struct RingResolutionA {
  double along_x_A = 0;
  double along_y_A = 0;
  double mean_A = 0;
};
RingResolutionA RingFrequencyToA(double f_cycles_per_px, PixelSizeA pixel_size);

// ---------------------------------------------------------------------------
// Fourier ring correlation.

struct FrcOptions {
  // Tukey (cosine-edged) window: this fraction of each axis at each end is
  // tapered. Stops the frame edges from putting a cross of spurious
  // correlation into the spectrum; a small taper keeps most samples
  // independent (a full Hann window would quarter their effective number).
  double apodisation_fraction = 0.1;
  bool subtract_mean = true;
  // Significance: the rings below a claimed crossing, pooled, must correlate
  // above sigmas / sqrt(n_eff), n_eff = half their Fourier pixel count times
  // the window efficiency (van Heel's 3-sigma idea applied to the band, as
  // single low rings hold too few samples to test on their own). Each ring
  // also reports its own 3-sigma value for display.
  double significance_sigmas = 3.0;
  // A crossing is the start of this many consecutive rings below the
  // threshold, so one dip (e.g. between Bragg rings) does not end the
  // resolution; and at least this many rings below the crossing must be
  // above it, or there is no signal.
  int min_consecutive_rings = 3;

  bool Check(std::string* error) const;
};

struct FrcRing {
  double frequency_cycles_per_px = 0;  // ring centre
  double frc = 0;
  std::int64_t num_samples = 0;        // Fourier pixels in the ring (full plane)
  double noise_threshold = 0;          // significance_sigmas / sqrt(n_eff) of
                                       // this ring alone (for display)
  // SSNR of the FULL average (both halves summed): 2 FRC / (1 - FRC), with
  // FRC clamped to [0, 1 - 1e-9].
  double ssnr = 0;
};

enum class FrcCrossing {
  kCrossed,     // fell below the threshold at frequency_cycles_per_px
  kNotReached,  // stayed above it up to the last ring (resolution >= Nyquist
                // ring); frequency_cycles_per_px is that last ring
  kNoSignal,    // never significantly above it: no resolution can be claimed
};
const char* FrcCrossingName(FrcCrossing crossing);

struct FrcResolution {
  FrcCrossing status = FrcCrossing::kNoSignal;
  double frequency_cycles_per_px = 0;  // interpolated; 0 for kNoSignal
};

struct FrcReport {
  // Ring r covers frequencies within half a ring width of r / min(rows, cols)
  // cycles/px; ring 0 is the mean and is not used.
  std::vector<FrcRing> rings;
  // A ring passes at threshold T when FRC >= T; see FrcOptions for the
  // crossing and significance rules.
  FrcResolution at_one_seventh;  // T = 1/7 (half-set criterion)
  FrcResolution at_half;         // T = 0.5
  // Whole-image SNR of the full average from the correlation coefficient rho
  // of the two halves over all rings but 0: 2 rho / (1 - rho).
  double image_snr = 0;
  double window_efficiency = 1;  // (mean w^2)^2 / mean w^4 of the window
};

// FRC of two images of one shape (e.g. ShiftedAverager half-set averages,
// cropped to the full average's valid rectangle). Throws
// std::invalid_argument on a shape mismatch, an image smaller than 8 x 8 or
// bad options.
FrcReport FourierRingCorrelation(FrameView a, FrameView b, const FrcOptions& options = FrcOptions());

// Writes an image of the shape agreed with its caller into `out` (that many
// floats, row-major); false when it has no image to give.
using ImageWriter = std::function<bool(float* out)>;

// The same FRC of two images that their writers put straight into the
// transform's input, one after the other: it holds one transform and one
// half spectrum (12 bytes a pixel) and never either image, so the caller
// need not hold two copies of a region as large as a frame (half-set means
// of a 2048^2 mosaic). nullopt when a writer returns false.
std::optional<FrcReport> FourierRingCorrelation(Shape shape, const ImageWriter& a, const ImageWriter& b,
                                                const FrcOptions& options = FrcOptions());

// ---------------------------------------------------------------------------
// Information transfer from spectral peaks.

struct InformationTransferOptions {
  // Expected number of pure-noise spectrum pixels wrongly declared peaks per
  // image. Noise power in a Fourier pixel is exponentially distributed about
  // its mean, so the threshold on power / background_mean is
  // ln(num_tested_pixels / false_alarms_per_image) (~16 for a 512^2 frame).
  double false_alarms_per_image = 0.01;
  // Frequencies below this are ignored: few samples per ring for a background
  // estimate, and window leakage and non-periodic content live there.
  double min_frequency_cycles_per_px = 0.02;
  // Hann window: compact peaks, low leakage from the frame edges.
  bool hann_window = true;

  bool Check(std::string* error) const;
};

struct SpectralPeak {
  double fx_cycles_per_px = 0;  // signed
  double fy_cycles_per_px = 0;  // signed
  double frequency_cycles_per_px = 0;
  double power_over_background = 0;
};

struct InformationTransferReport {
  bool found = false;                  // any significant peak
  double frequency_cycles_per_px = 0;  // highest significant peak; 0 when none
  SpectralPeak highest;                // that peak
  // Significant local maxima of the half-plane spectrum (ky in either sign,
  // kx >= 0), strongest first.
  std::vector<SpectralPeak> peaks;
  double threshold = 0;  // on power / background mean
};

// Highest spatial frequency at which the power spectrum of `image` has a
// significant local maximum above the ring's noise floor (the ring median /
// ln 2, i.e. the mean of exponentially distributed noise power, robust to the
// few peak pixels). Convert with PeriodA(highest.fx, highest.fy, pixel_size).
// Throws std::invalid_argument for images smaller than 16 x 16 or bad options
// (and for images over 131 000 px on both sides: 2-byte ring indices).
InformationTransferReport InformationTransfer(
    FrameView image, const InformationTransferOptions& options = InformationTransferOptions());
// The same of the image its writer puts straight into the transform's input
// (as the FRC's overload above); nothing found when the writer returns false.
InformationTransferReport InformationTransfer(
    Shape shape, const ImageWriter& image,
    const InformationTransferOptions& options = InformationTransferOptions());

// ---------------------------------------------------------------------------
// Drift status.

struct DriftOptions {
  // Drift rate = slope of a straight-line fit to the last window_frames shifts.
  int window_frames = 10;
  // Settled when the speed stays below this for settle_window_frames
  // consecutive windows. px/frame; used when settled_speed_px_per_s <= 0 or
  // timestamps are missing.
  double settled_speed_px_per_frame = 0.05;
  double settled_speed_px_per_s = 0;  // > 0: use this with valid timestamps
  int settle_window_frames = 5;
  // Trend: speed of the last window vs the window before it; a relative
  // change within this is steady.
  double trend_tolerance = 0.25;

  bool Check(std::string* error) const;
};

enum class DriftTrend { kUnknown, kSlowing, kSteady, kSpeeding };
const char* DriftTrendName(DriftTrend trend);

struct DriftStatus {
  int num_frames = 0;
  bool rate_valid = false;  // at least window_frames shifts
  Shift velocity_px_per_frame;
  Shift velocity_px_per_s;  // NaN when timestamps are missing or not increasing
  double speed_px_per_frame = 0;
  double speed_px_per_s = std::nan("");
  double previous_speed_px_per_frame = std::nan("");  // the window before
  DriftTrend trend = DriftTrend::kUnknown;
  bool settled = false;
};

// Status after the last of `shifts` (s_i of frames 0..n-1); timestamps_s is
// empty or one per shift (NaN allowed). Throws std::invalid_argument when the
// sizes differ or options are bad. Cost O(window * settle_window).
DriftStatus EvaluateDrift(const std::vector<Shift>& shifts, const std::vector<double>& timestamps_s,
                          const DriftOptions& options = DriftOptions());

// Follows a growing shift series and remembers when drift settled.
//
//   DriftSettledTracker tracker(DriftOptions{});
//   for (...) { DriftStatus status = tracker.Add(shift, timestamp); }
//   if (tracker.settled_at_frame() >= 0) ...
class DriftSettledTracker {
 public:
  explicit DriftSettledTracker(const DriftOptions& options);
  // Appends s_i (i = frames added so far) and returns the status. A shift
  // history revised by the solver can be given with Reset + Add again.
  DriftStatus Add(Shift shift, double timestamp_s = std::nan(""));
  void Reset();
  // Frame at which `settled` last switched on (the detection), -1 when not
  // settled now.
  int settled_at_frame() const { return settled_at_frame_; }
  // Estimated first frame of the settled period: the first frame of the
  // earliest slow window that led to the detection; -1 when not settled.
  int settled_since_frame() const { return settled_since_frame_; }

 private:
  DriftOptions options_;
  std::vector<Shift> shifts_;
  std::vector<double> timestamps_s_;
  int settled_at_frame_ = -1;
  int settled_since_frame_ = -1;
};

// ---------------------------------------------------------------------------
// Stop rule.

struct StopInputs {
  int num_frames = 0;
  double resolution_A = std::nan("");  // NaN: not measured / no signal yet
  double snr = std::nan("");           // e.g. FrcReport::image_snr
  bool drift_settled = false;
};

struct StopDecision {
  bool good = false;  // every enabled target is met
  bool stop = false;  // good, or max_frames reached
  std::string reason;  // human-readable, e.g. "resolution 1.12 Å reached
                       // target 1.2 Å after 31 frames"
};

class StopRule {
 public:
  struct Options {
    double target_resolution_A = 0;  // <= 0: not a target
    double target_snr = 0;           // <= 0: not a target
    int max_frames = 0;              // <= 0: no limit
    bool require_drift_settled = false;

    bool Check(std::string* error) const;
  };

  // Throws std::invalid_argument when options.Check() fails.
  explicit StopRule(const Options& options);
  // With no target enabled, good is false ("no target set").
  StopDecision Evaluate(const StopInputs& inputs) const;

 private:
  Options options_;
};

}  // namespace livealign
