#pragma once
// The pair-correlation engine: caches one cropped, weighted half-spectrum (the
// "band") per frame and correlates any two cached frames.
//
// Per frame (AddFrame): mean subtraction + edge window (core/preprocess.hpp),
// full-size r2c, multiplication by sqrt(W(k)) (core/fourier_weight.hpp), crop to
// the band_rows() x band_cols() low-frequency block (exact: see core/fourier_weight.hpp), plus a
// second, unweighted 64 x 64 band for the coarse (lattice-free) stage.
// Per pair (Correlate): band product m = conj(G_i) G_j shaped by the correlation
// type (cc: W m; pc: W m/|m|; hybrid: W |m|^p e^{i arg m}), zero-padded by
// `oversample`, inverse c2r. Because W = 0 outside the band this map is the EXACT
// band-limited correlation sampled every frame/(oversample*band) pixels. Local
// maxima inside the search window become candidates, ranked by the heights of
// their 3-point Gaussian fits on the oversampled map; the leading
// refine_candidates are refined to final precision by Newton iterations on the
// analytic band-limited correlation
//   C(x) = sum_k h(k) exp(2 pi i (kx x / cols + ky y / rows)),
// whose maximum is what the upsampled matrix-DFT of Guizar-Sicairos (2008)
// approximates on a grid; Newton gets it to ~1e-4 px at O(band) per iteration.
// The refined candidates are then ranked by their refined heights: on a crystal
// the correlation is a lattice of near-equal peaks whose only reliable
// difference is the window/content envelope (centred at zero shift), a few %
// between neighbouring translates.
//
// The other candidates keep their 3-point-fit positions and heights (up to
// ~0.17 px from the band maximum at oversample 2); call Refine() on the one the
// solver picks.
//
// Window bias: the edge window stays put while content moves under it, so the
// windowed frames are not exact translates and the raw maximum is pulled toward
// 0 by ~1 % of the shift. With correct_window_bias every refined candidate
// is moved to the maximum of C / R, R the window's (cyclic) autocorrelation —
// exact in expectation for statistically uniform content (on a field of blobs:
// RMS error 0.04 px instead of 0.20 px for shifts up to 30 px at 256 px), but a
// model: content concentrated away from the edges is over-corrected. Exact
// answers need re-windowing, which TemplateRegistrar does.
//
// Heights are C / sqrt(E_i E_j) with E = sum_k W |F|^{2p}: a frame against
// itself gives 1, and |height| <= 1 always (Cauchy-Schwarz).
//
// Sign: if frame j is frame i with its content moved by (+dx, +dy), the best
// candidate is j_from_i = (dx, dy) (core/shift.hpp); shifts wrap into
// (-N/2, N/2] per axis.
//
// Thread-safety: AddFrame() must be called from one thread at a time. It may
// run concurrently with Correlate*/Refine on slots that already exist (the slot
// table is guarded by a shared mutex; cached bands are immutable once added).
// Correlate*/Refine/CorrelationMap are const and may run concurrently with each
// other as long as each concurrent caller uses a distinct `worker` id in
// [0, num_workers()): each worker owns its scratch (product buffer, FFT plans),
// so the per-pair path does not allocate except for the returned candidates.
//
//   Correlator correlator(CorrelatorOptions{}, Shape{512, 512}, pool.NumWorkers());
//   int a = correlator.AddFrame(frame0), b = correlator.AddFrame(frame1);
//   PairMeasurement m = correlator.Correlate(a, b, /*worker=*/0);
//   Shift b_from_a = m.candidates.at(0).j_from_i;   // refined, ~0.01 px

#include <complex>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/fft.hpp"
#include "core/fourier_weight.hpp"
#include "core/frame.hpp"
#include "core/preprocess.hpp"
#include "core/shift.hpp"

namespace livealign {

enum class CorrelationType { kCc, kPc, kHybrid };

// "cc" | "pc" | "hybrid"; std::nullopt otherwise.
std::optional<CorrelationType> CorrelationTypeFromName(std::string_view name);
const char* CorrelationTypeName(CorrelationType type);

struct CorrelatorOptions {
  WindowType window = WindowType::kTukey;
  double tukey_alpha = 0.25;  // fraction of each axis tapered; more = fewer edge artefacts, less data
  FourierWeightOptions weight;  // default: gaussian, band = N/4
  // cc is the matched filter, best at low dose; pc sharpens the peak at high
  // SNR; hybrid |m|^p e^{i arg m} interpolates (p = 1 is cc, p = 0 is pc).
  CorrelationType type = CorrelationType::kCc;
  double hybrid_p = 0.8;  // used only for kHybrid; in [0, 1]
  // Peaks are searched only where |dx| <= max_shift and |dy| <= max_shift.
  // 0 means a quarter of each frame axis; values above half an axis are clamped.
  double max_shift_px = 0.0;
  int top_k = 5;       // distinct local maxima kept per pair (lattice translates)
  // How many of them (the highest by fitted height) are Newton-refined and then
  // ranked by refined height; the rest keep 3-point-fit values. Fitted heights
  // are off by up to a few % (peak shape, neighbouring peaks), about the
  // envelope margin that singles out the true translate, so the few leading
  // ones are compared at their true maxima. Each costs ~3-4 band evaluations
  // (512^2: ~0.03 ms). Values above top_k act as top_k. The default refines
  // the best one only: on crystals the engine repairs a wrong translate
  // (snapping, lattice-offset pinning) at no per-pair cost.
  int refine_candidates = 1;
  // Zero-padding factor of the band before the c2r (map grid = frame/(oversample
  // * band) px). Candidates are ranked by the heights of 3-point fits on this
  // map before the leading ones are refined, so the grid must resolve the
  // peaks: at 1 (grid N/M = 4 px at the default band) it is critically
  // sampled, and on a crystal (peaks about as wide as the grid, sampled at
  // 50-100 % of their height depending on their sub-grid phase) the brightest
  // sample is often a neighbouring lattice translate (the true one came first
  // in about 30 % of the pairs of the default simulated perovskite; at 2 in
  // all). The default is 1 all the same: the engine's snapping and
  // lattice-offset pinning repair those hops and the final shifts were equally
  // accurate (bench --size 512 --frames 40), while 2 makes a pair ~2.5x
  // (512 px) to 3x (1024 px) slower.
  int oversample = 1;
  // Divide out the window-overlap envelope at the refined peak (see
  // CorrectWindowBias): without it, shifts come out ~1 % of |shift| too small.
  bool correct_window_bias = true;
  int coarse_band_px = 64;  // per-axis size of the unweighted coarse band (even,
                            // 2^a 3^b 5^c); capped at the frame size
  // Store each cached fine band as IEEE half floats (with a per-frame scale,
  // so no value overflows) instead of float: halves the cache, which is
  // what grows with the frame count; decoded per pair (see
  // config/livealign.ini band-cache-fp16 for the measured accuracy cost).
  bool band_fp16 = true;

  // p actually used: 1 for cc, 0 for pc, hybrid_p for hybrid.
  double EffectiveP() const;
  // False (with a reason in *error, if given) for bad window/weight options,
  // hybrid_p outside [0, 1], max_shift_px < 0, top_k < 1, refine_candidates < 1,
  // oversample outside [1, 8] or a coarse_band_px that is not a positive FFT-friendly even number.
  bool Check(std::string* error) const;
};

// Result of maximising a band-limited correlation.
struct BandPeak {
  Shift position;      // where C is maximal (pixels, not wrapped)
  double value = 0;    // C there (unnormalised)
  int iterations = 0;
  bool converged = false;  // a (concave) Newton step fell below the tolerance
  double hxx = 0, hyy = 0, hxy = 0;  // Hessian of C at `position`
};

// Moves a maximum of C to the maximum of C / R, where R is the window overlap
// envelope (Preprocessor::OverlapLogGradient gives grad log R at the peak):
// at the new maximum grad C = C grad log R, so to first order
// delta = C H^-1 grad log R. Returns the peak unchanged when H is not negative
// definite.
Shift CorrectWindowBias(const BandPeak& peak, Shift grad_log_overlap);

// Maximises C(x) = sum over the Hermitian-complete spectrum of
// h(k) exp(2 pi i (fx x / frame.cols + fy y / frame.rows)), where half_band is the
// band.rows x (band.cols / 2 + 1) half spectrum (row r holds signed frequency
// SignedFrequency(r, band.rows), column c frequency c; its Nyquist row/column, if
// any, must be zero). Newton iterations with a step limit of max_step_px and a
// backtracking line search, starting at `initial`, until a Newton step is below
// tolerance_px; that last step is applied without another evaluation (Newton
// converges quadratically, so the result is accurate to ~tolerance^2). Each iteration costs ~3 complex multiply-adds per band entry.
// scratch is resized as needed (reuse it to avoid allocation).
// Never throws for numerical reasons; converged == false reports failure.
BandPeak MaximizeBandCorrelation(const std::complex<float>* half_band, Shape band, Shape frame,
                                 Shift initial, double max_step_px, double tolerance_px,
                                 int max_iterations, std::vector<std::complex<float>>* scratch);

class Correlator {
 public:
  // Throws std::invalid_argument when !options.Check(), the shape is empty or
  // num_workers < 1. Plans the FFTs (one map + one coarse plan per worker).
  Correlator(const CorrelatorOptions& options, Shape frame_shape, int num_workers);
  ~Correlator();
  Correlator(const Correlator&) = delete;
  Correlator& operator=(const Correlator&) = delete;

  // A frame's cached bands: what AddFrame keeps of it, computed from its
  // pixels alone.
  struct CachedFrame {
    std::vector<std::complex<float>> band;    // sqrt(W) F, band half spectrum (empty when stored as half)
    double energy = 0;                        // sum over the full band of W |F|^{2p}
    std::vector<std::complex<float>> coarse;  // unweighted coarse band half spectrum
    // band_fp16: the band as half floats (re, im interleaved) of band / scale.
    std::vector<std::uint16_t> band_half;
    float band_scale = 1;
  };

  // Another reader of the frame's pre-processed spectrum (the correlator's
  // window, RealFft2d layout): spectrum columns 0 .. columns - 1 are
  // transformed, and `read(spectrum, spectrum_cols)` is called with them
  // during Prepare. Why: the precision stage's frame spectrum needs the same
  // window and row transforms, so it costs only the extra columns.
  struct SpectrumTap {
    int columns = 0;
    std::function<void(const std::complex<float>* spectrum, int spectrum_cols)> read;
  };
  // Pre-processes, transforms, weights and crops `frame` into its bands, and
  // hands the transform to `tap` when given.
  // Thread-safe against every other member (one Prepare runs at a time), so a
  // reader can prepare frame k + 1 while frame k's pairs are correlated.
  // Throws std::invalid_argument on a shape mismatch or a tap's column count
  // outside 1 .. the spectrum's. The frame is not referenced after the call
  // returns.
  std::unique_ptr<const CachedFrame> Prepare(FrameView frame, const SpectrumTap* tap = nullptr) const;
  // Caches prepared bands in the next slot; returns its index (0, 1, 2, ... in
  // call order). Throws std::invalid_argument for null bands.
  int Add(std::unique_ptr<const CachedFrame> bands);
  // Add(Prepare(frame)).
  int AddFrame(FrameView frame);

  // Correlates slots i and j (convention i < j; any two valid slots work, i == j
  // gives the autocorrelation). candidates are j_from_i: first the refined ones
  // (refined == true unless Newton failed to converge) by refined height, then
  // the unrefined ones by fitted height. Candidates are local maxima of the map
  // (at most top_k, taken by fitted height) whose fitted position lies within
  // max_shift of 0 per axis, or, in the second overload when `predicted` is set,
  // within radius_px (per axis) of *predicted. A refined candidate may end up to
  // 1 px beyond that window; one Newton carries farther (onto a maximum outside
  // the window) is dropped, and one that converges within 1 px of a higher
  // refined maximum is merged into it. Empty candidates when no local maximum
  // lies in the window.
  PairMeasurement Correlate(int i, int j, int worker) const;
  PairMeasurement Correlate(int i, int j, int worker, std::optional<Shift> predicted,
                            double radius_px) const;
  // Correlate(i, j, worker) with every candidate (top_k) refined, not only
  // refine_candidates: its first candidate is then the highest refined
  // maximum of the map, where the fitted heights of a lattice of near-equal
  // peaks, which pick the ones refined, differ by the sampling phase. For
  // decisions that compare heights (the pair search's stage-jump test).
  PairMeasurement CorrelateEveryCandidate(int i, int j, int worker) const;

  // Maximises the band-limited correlation of (i, j) starting at `initial`
  // (a j_from_i estimate, e.g. a non-best candidate the solver chose).
  // refined is false when Newton did not converge (the position is then the
  // best point found).
  PeakCandidate Refine(int i, int j, Shift initial, int worker) const;

  // Hop-free coarse stage: correlation of the unweighted coarse bands through a
  // raised-cosine low-pass W_c(k) = 0.5 (1 + cos(pi |k| / cutoff)) for |k| < cutoff.
  // Pass a cutoff below the first Bragg ring: lattice peaks vanish, non-periodic
  // content gives one broad peak. The effective cutoff is min(cutoff, what the
  // coarse band holds) = min(cutoff, coarse_rows/2/rows, coarse_cols/2/cols).
  // Returns has_coarse = true, coarse_j_from_i = the best peak (also
  // candidates[0], refined on the coarse band), searched within max_shift.
  // Throws std::invalid_argument for bad slots/worker or cutoff <= 0.
  PairMeasurement CorrelateCoarse(int i, int j, double cutoff_cycles_per_px, int worker) const;

  // The coarse correlation of two runs of frames (core/run_correlation.hpp):
  // each run's coarse bands, and the window's, summed at its frames'
  // positions (shifts s, so that s_j - s_i is j_from_i) through
  // CorrelateCoarse's low-pass, and the two runs' means compared at each of
  // `offsets` added to the second run's positions. Element n is their
  // correlation coefficient there. Summing the frames first is what makes it
  // clear where each pair's coarse peak is not: with N frames a run, the
  // noise of each sum is sqrt(N) times a frame's and its non-periodic
  // content N times. Costs the runs' frames times the coarse band, four
  // coarse-map transforms, and the offsets times the coarse map. Throws
  // std::invalid_argument for a bad slot, a size mismatch, an empty run or
  // cutoff <= 0.
  std::vector<double> CoarseRunCorrelation(const std::vector<int>& first,
                                           const std::vector<Shift>& first_shifts,
                                           const std::vector<int>& second,
                                           const std::vector<Shift>& second_shifts,
                                           const std::vector<Shift>& offsets,
                                           double cutoff_cycles_per_px) const;

  // The normalised oversampled correlation map of (i, j) (what Correlate
  // searches), (oversample * band_rows) x (oversample * band_cols), in FFT order:
  // element (r, c) is the shift (y, x) = (r', c') * frame / map size with
  // r' = r or r - map rows (wrap). For inspection and tests; allocates.
  Frame CorrelationMap(int i, int j, int worker) const;

  int band_rows() const { return band_.rows; }
  int band_cols() const { return band_.cols; }
  Shape band_shape() const { return band_; }
  Shape coarse_band_shape() const { return coarse_band_; }
  Shape map_shape() const { return map_shape_; }
  // Bytes held by the cached bands (fine + coarse) of all frames.
  std::size_t cache_bytes() const;
  int num_frames() const;
  int num_workers() const { return static_cast<int>(workers_.size()); }
  Shape frame_shape() const { return frame_shape_; }
  const CorrelatorOptions& options() const { return options_; }

 private:
  struct Worker;

  const CachedFrame& Slot(int index) const;  // throws for a bad index
  Worker& WorkerScratch(int worker) const;   // throws for a bad id
  // Fills w.product with h(k) for the pair; returns sqrt(E_i E_j) and the
  // full-spectrum sum of |h|^2 in *power.
  double ComputeProduct(const CachedFrame& a, const CachedFrame& b, Worker& w,
                        double* power) const;
  PairMeasurement Search(int i, int j, Worker& w, Shift center, Shift half_width, int refine) const;

  CorrelatorOptions options_;
  Shape frame_shape_;
  Shape band_;         // fine band (crop) size
  Shape coarse_band_;  // coarse band size
  Shape map_shape_;    // oversampled fine map
  Shape coarse_map_shape_;
  // The window's coarse band (half spectrum, coarse_band_ rows): summed with
  // each run's frames by CoarseRunCorrelation to divide the window out.
  std::vector<std::complex<double>> coarse_window_;
  double p_ = 1.0;
  Preprocessor preprocessor_;
  std::vector<float> sqrt_weight_;      // band half spectrum: sqrt(W)
  std::vector<float> residual_weight_;  // band half spectrum: W^(1-p) (empty for cc)
  std::vector<int> row_extent_;         // per band row: columns that may be non-zero
  Shift max_shift_;                     // search half-width per axis, pixels

  mutable std::mutex prepare_mutex_;         // one Prepare at a time: it owns forward_fft_
  std::unique_ptr<RealFft2d> forward_fft_;  // full-size, used by Prepare only

  mutable std::shared_mutex frames_mutex_;  // guards the frames_ vector (not the bands)
  std::vector<std::unique_ptr<const CachedFrame>> frames_;

  std::vector<std::unique_ptr<Worker>> workers_;  // one per worker id
};

}  // namespace livealign
