#include "core/correlator.hpp"
#include "core/check.hpp"
#include "core/run_correlation.hpp"

#include <Eigen/Core>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace livealign {
namespace {

// Wraps a shift into (-n/2, n/2].
double WrapShift(double s, int n) {
  s -= n * std::round(s / n);
  if (s <= -0.5 * n) s += n;
  if (s > 0.5 * n) s -= n;
  return s;
}

// Copies the crop of a full half spectrum (frame rows x (frame cols/2+1)) into
// band (band rows x (band cols/2+1)), multiplied by scale (band half layout, or
// nullptr for 1). The crop's Nyquist row/column (even band sizes) is zeroed:
// it is never inside a band-limited weight, and zero-padding is only exact
// without it.
void CropSpectrum(const cfloat* full, Shape frame, Shape band, const float* scale, cfloat* out) {
  const int full_cols = frame.cols / 2 + 1;
  const int band_cols = band.cols / 2 + 1;
  for (int r = 0; r < band.rows; ++r) {
    cfloat* dst = out + static_cast<std::size_t>(r) * band_cols;
    const bool nyquist_row = band.rows % 2 == 0 && r == band.rows / 2;
    if (nyquist_row) {
      std::fill(dst, dst + band_cols, cfloat(0, 0));
      continue;
    }
    const int fy = SignedFrequency(r, band.rows);
    const int src_row = fy >= 0 ? fy : fy + frame.rows;
    const cfloat* src = full + static_cast<std::size_t>(src_row) * full_cols;
    const float* s = scale ? scale + static_cast<std::size_t>(r) * band_cols : nullptr;
    for (int c = 0; c < band_cols; ++c) dst[c] = s ? src[c] * s[c] : src[c];
    if (band.cols % 2 == 0) dst[band_cols - 1] = cfloat(0, 0);
  }
}

// Zero-pads a band half spectrum into fft.spectrum() (whose shape is a
// multiple of the band's, or equal to it).
void ScatterPadded(const cfloat* band_spectrum, Shape band, RealFft2d& fft) {
  cfloat* dst = fft.spectrum();
  const int dst_cols = fft.spectrum_cols();
  const int dst_rows = fft.shape().rows;
  const int band_cols = band.cols / 2 + 1;
  std::fill(dst, dst + fft.spectrum_size(), cfloat(0, 0));
  for (int r = 0; r < band.rows; ++r) {
    const int fy = SignedFrequency(r, band.rows);
    const int row = fy >= 0 ? fy : fy + dst_rows;
    std::memcpy(static_cast<void*>(dst + static_cast<std::size_t>(row) * dst_cols),
                band_spectrum + static_cast<std::size_t>(r) * band_cols,
                sizeof(cfloat) * band_cols);
  }
}

// The coarse stage's raised-cosine low-pass W_c(k) = 0.5 (1 + cos(pi |k| /
// cutoff)) for |k| < cutoff over the coarse band's half spectrum, with the
// cutoff first lowered to what the band holds (the raised cosine must reach
// 0 inside the band for the crop to be exact).
void CoarseLowPass(Shape coarse_band, Shape frame, double cutoff_cycles_per_px, std::vector<double>* weight) {
  const double cutoff = std::min({cutoff_cycles_per_px, 0.5 * coarse_band.rows / frame.rows,
                                  0.5 * coarse_band.cols / frame.cols});
  const int band_cols = coarse_band.cols / 2 + 1;
  weight->resize(static_cast<std::size_t>(coarse_band.rows) * band_cols);
  for (int r = 0; r < coarse_band.rows; ++r) {
    const double ky = static_cast<double>(SignedFrequency(r, coarse_band.rows)) / frame.rows;
    for (int c = 0; c < band_cols; ++c) {
      const double k = std::hypot(static_cast<double>(c) / frame.cols, ky);
      (*weight)[static_cast<std::size_t>(r) * band_cols + c] =
          k < cutoff ? 0.5 * (1.0 + std::cos(M_PI * k / cutoff)) : 0.0;
    }
  }
}

// sum_x window[x] exp(-2 pi i frequency x / n), the phases by recurrence.
std::complex<double> WindowTransform(const std::vector<float>& window, int frequency) {
  std::complex<double> sum(0, 0);
  const int n = static_cast<int>(window.size());
  const double angle = -2 * M_PI * frequency / n;
  const std::complex<double> step(std::cos(angle), std::sin(angle));
  std::complex<double> phase(1, 0);
  for (int x = 0; x < n; ++x, phase *= step) sum += double{window[static_cast<std::size_t>(x)]} * phase;
  return sum;
}

// Vertex of the 3-point fit through (-1, m), (0, z), (+1, p): its offset in
// [-0.5, 0.5] grid steps and the factor by which the fitted peak exceeds z
// (Gaussian fit: parabola on the logarithm; parabola on the values otherwise,
// where the factor is (z + gain) / z, or 1 for z <= 0).
struct AxisFit {
  double offset = 0;
  double factor = 1;
};

AxisFit ThreePointFit(double m, double z, double p) {
  AxisFit fit;
  if (m > 0 && z > 0 && p > 0) {
    const double lm = std::log(m), lz = std::log(z), lp = std::log(p);
    const double curvature = 0.5 * (lm - 2 * lz + lp), slope = 0.5 * (lp - lm);
    if (curvature < 0) {
      fit.offset = std::clamp(-slope / (2 * curvature), -0.5, 0.5);
      fit.factor = std::exp(slope * fit.offset + curvature * fit.offset * fit.offset);
      return fit;
    }
  }
  const double curvature = 0.5 * (m - 2 * z + p), slope = 0.5 * (p - m);
  if (curvature < 0) {
    fit.offset = std::clamp(-slope / (2 * curvature), -0.5, 0.5);
    const double gain = slope * fit.offset + curvature * fit.offset * fit.offset;
    if (z > 0) fit.factor = (z + gain) / z;
  }
  return fit;
}

struct GridPeak {
  float value;   // map value at the grid point
  double score;  // height of the 3-point fit's vertex (the ranking key)
  int ry;        // unwrapped map row index (may be negative)
  int rx;        // unwrapped map column index
};

struct MapView {
  const float* data;
  int rows, cols;
  double dy, dx;  // frame pixels per map step
  float at(int ry, int rx) const {
    return data[static_cast<std::size_t>(Mod(ry, rows)) * cols + Mod(rx, cols)];
  }
};

// Index range [lo, hi] of map steps of size delta within center +- half,
// at most `size` long (each map point once).
void StepRange(double center, double half, double delta, int size, int* lo, int* hi) {
  *lo = static_cast<int>(std::ceil((center - half) / delta - 1e-9));
  *hi = static_cast<int>(std::floor((center + half) / delta + 1e-9));
  if (*hi - *lo + 1 > size) *hi = *lo + size - 1;
}

// Up to k local maxima (>= their 8 neighbours, ties broken by raster order so a
// plateau yields one) whose grid point lies in the window, ranked by the
// height of their separable 3-point fit, highest first. Ranking by the fitted
// rather than the sampled height matters when the peaks are about as wide as
// the grid: a lattice of equal peaks is sampled at up to half its height,
// depending on each peak's sub-grid phase. cols_scratch is reused storage.
void FindLocalMaxima(const MapView& map, Shift center, Shift half, int k,
                     std::vector<GridPeak>* peaks, std::vector<int>* cols_scratch) {
  peaks->clear();
  int y0, y1, x0, x1;
  StepRange(center.y, half.y, map.dy, map.rows, &y0, &y1);
  StepRange(center.x, half.x, map.dx, map.cols, &x0, &x1);
  if (y1 < y0 || x1 < x0) return;
  const int nx = x1 - x0 + 1;
  std::vector<int>& cols = *cols_scratch;
  cols.resize(static_cast<std::size_t>(3 * nx));
  for (int i = 0; i < nx; ++i) {
    cols[3 * i] = Mod(x0 + i - 1, map.cols);
    cols[3 * i + 1] = Mod(x0 + i, map.cols);
    cols[3 * i + 2] = Mod(x0 + i + 1, map.cols);
  }
  for (int ry = y0; ry <= y1; ++ry) {
    const float* up = map.data + static_cast<std::size_t>(Mod(ry - 1, map.rows)) * map.cols;
    const float* mid = map.data + static_cast<std::size_t>(Mod(ry, map.rows)) * map.cols;
    const float* dn = map.data + static_cast<std::size_t>(Mod(ry + 1, map.rows)) * map.cols;
    for (int i = 0; i < nx; ++i) {
      const int cl = cols[3 * i], c = cols[3 * i + 1], cr = cols[3 * i + 2];
      const float v = mid[c];
      if (!(v > mid[cl] && v >= mid[cr] && v > up[cl] && v > up[c] && v > up[cr] &&
            v >= dn[cl] && v >= dn[c] && v >= dn[cr])) {
        continue;
      }
      const double fx = ThreePointFit(mid[cl], v, mid[cr]).factor;
      const double fy = ThreePointFit(up[c], v, dn[c]).factor;
      const double score = v > 0 ? v * fx * fy : v;
      if (static_cast<int>(peaks->size()) == k && score <= peaks->back().score) continue;
      GridPeak peak{v, score, ry, x0 + i};
      auto it = std::upper_bound(peaks->begin(), peaks->end(), peak,
                                 [](const GridPeak& a, const GridPeak& b) { return a.score > b.score; });
      peaks->insert(it, peak);
      if (static_cast<int>(peaks->size()) > k) peaks->pop_back();
    }
  }
}

// Sub-pixel position (j_from_i, pixels, unwrapped) of a grid peak by separable
// 3-point Gaussian (or parabolic) fits.
Shift FitGridPeak(const MapView& map, const GridPeak& p) {
  const double z = p.value;
  const double ox = ThreePointFit(map.at(p.ry, p.rx - 1), z, map.at(p.ry, p.rx + 1)).offset;
  const double oy = ThreePointFit(map.at(p.ry - 1, p.rx), z, map.at(p.ry + 1, p.rx)).offset;
  return {(p.rx + ox) * map.dx, (p.ry + oy) * map.dy};
}

// Sub-pixel fits of the grid peaks; appends those whose fitted position lies in
// the window (center +- half per axis) to *out as wrapped j_from_i candidates
// and erases the others from *peaks, so (*peaks)[k] matches (*out)[k].
void FitCandidates(const MapView& map, Shift center, Shift half, double norm, Shape frame,
                   std::vector<GridPeak>* peaks, std::vector<PeakCandidate>* out) {
  std::size_t kept = 0;
  for (std::size_t k = 0; k < peaks->size(); ++k) {
    const GridPeak p = (*peaks)[k];
    const Shift s = FitGridPeak(map, p);
    if (std::abs(s.x - center.x) > half.x + 1e-9 || std::abs(s.y - center.y) > half.y + 1e-9) continue;
    (*peaks)[kept++] = p;
    out->push_back({{WrapShift(s.x, frame.cols), WrapShift(s.y, frame.rows)}, p.score / norm, false});
  }
  peaks->resize(kept);
}

// Sum of squares of the map in the (2 r + 1)^2 block around a grid point.
double BlockPower(const MapView& map, const GridPeak& p, int radius, int* count) {
  double sum = 0;
  *count = 0;
  const int ry = std::min(radius, (map.rows - 1) / 2), rx = std::min(radius, (map.cols - 1) / 2);
  for (int dy = -ry; dy <= ry; ++dy) {
    for (int dx = -rx; dx <= rx; ++dx) {
      const double v = map.at(p.ry + dy, p.rx + dx);
      sum += v * v;
      ++*count;
    }
  }
  return sum;
}

// A refined candidate may end this far outside the search window (the 3-point
// fit that put it inside is ~0.35 px off); farther out, Newton has climbed onto
// a maximum that lies outside the window, and the candidate is dropped.
constexpr double kWindowSlackPx = 1.0;
// Refined maxima closer than this are one maximum (two fits converged on it).
constexpr double kSameMaximumPx = 1.0;

bool SameMaximum(Shift a, Shift b, Shape frame) {
  const Shift d{WrapShift(a.x - b.x, frame.cols), WrapShift(a.y - b.y, frame.rows)};
  return d.Norm() < kSameMaximumPx;
}

struct RefinedPeak {
  BandPeak peak;
  int fitted;  // index of the fitted candidate / grid peak it started from
};

struct BandEval {
  double v = 0, gx = 0, gy = 0, hxx = 0, hyy = 0, hxy = 0;
};

// C and its first and second derivatives at (x, y); see MaximizeBandCorrelation.
// The row sums P_q(r) = sum_c c^q h(r, c) e^{i a c x} (q = 0, 1, 2) are three
// complex (rows x cols) * (cols) products, which Eigen vectorises; the column
// sums over r are then O(rows) in double. Three matrix-vector products, not
// one (rows x cols) * (cols x 3) matrix product: the matrix product packs the
// whole band into a scratch layout on every evaluation, and the three passes
// over the band (in cache) took 0.50-0.74 of its time for 256^2-64^2 bands.
BandEval EvaluateBand(const cfloat* h, Shape band, Shape frame, double x, double y,
                      std::vector<cfloat>* scratch) {
  using RowMajorMatrix = Eigen::Matrix<cfloat, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using ThreeColumns = Eigen::Matrix<cfloat, Eigen::Dynamic, 3>;
  const int band_cols = band.cols / 2 + 1;
  const double a = 2 * M_PI / frame.cols;
  const double b = 2 * M_PI / frame.rows;
  scratch->resize(static_cast<std::size_t>(3 * band_cols + 3 * band.rows));
  Eigen::Map<ThreeColumns> e(scratch->data(), band_cols, 3);
  Eigen::Map<ThreeColumns> p(scratch->data() + 3 * band_cols, band.rows, 3);
  // The phases by recurrence, exp(i a (c + 1) x) = exp(i a c x) exp(i a x),
  // in double (its rounding, ~1e-16 per step, stays far below float's): a
  // sin and cos per column and per row of every evaluation were 15 % of the
  // pair refinement's instructions.
  const std::complex<double> step_x(std::cos(a * x), std::sin(a * x));
  std::complex<double> phase_x(1, 0);
  for (int c = 0; c < band_cols; ++c, phase_x *= step_x) {
    const cfloat v(static_cast<float>(phase_x.real()), static_cast<float>(phase_x.imag()));
    e(c, 0) = v;
    e(c, 1) = static_cast<float>(c) * v;
    e(c, 2) = static_cast<float>(c) * static_cast<float>(c) * v;
  }
  const Eigen::Map<const RowMajorMatrix> hm(h, band.rows, band_cols);
  for (int q = 0; q < 3; ++q) p.col(q).noalias() = hm * e.col(q);
  BandEval out;
  // Row phases exp(i b fy y): fy runs 0, 1, ... then from its most negative
  // value up to -1 (SignedFrequency), each run by recurrence.
  const std::complex<double> step_y(std::cos(b * y), std::sin(b * y));
  std::complex<double> phase_y(1, 0);
  bool negative_run = false;
  for (int r = 0; r < band.rows; ++r) {
    // Hermitian completion: columns c > 0 stand for +-c (factor 2), column 0
    // holds both signs of ky already (factor 1; it only enters P_0).
    const std::complex<double> q0 = 2.0 * std::complex<double>(p(r, 0)) -
                                    std::complex<double>(h[static_cast<std::size_t>(r) * band_cols]);
    const std::complex<double> q1 = 2.0 * std::complex<double>(p(r, 1));
    const std::complex<double> q2 = 2.0 * std::complex<double>(p(r, 2));
    const double fy = SignedFrequency(r, band.rows);
    if (fy < 0 && !negative_run) {
      phase_y = std::complex<double>(std::cos(b * fy * y), std::sin(b * fy * y));
      negative_run = true;
    }
    const std::complex<double> ey = phase_y;
    phase_y *= step_y;
    const std::complex<double> e0 = ey * q0, e1 = ey * q1, e2 = ey * q2;
    out.v += e0.real();
    out.gx += -a * e1.imag();
    out.hxx += -a * a * e2.real();
    out.gy += -b * fy * e0.imag();
    out.hyy += -(b * fy) * (b * fy) * e0.real();
    out.hxy += -a * b * fy * e1.real();
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------

std::optional<CorrelationType> CorrelationTypeFromName(std::string_view name) {
  if (name == "cc") return CorrelationType::kCc;
  if (name == "pc") return CorrelationType::kPc;
  if (name == "hybrid") return CorrelationType::kHybrid;
  return std::nullopt;
}

const char* CorrelationTypeName(CorrelationType type) {
  switch (type) {
    case CorrelationType::kCc: return "cc";
    case CorrelationType::kPc: return "pc";
    case CorrelationType::kHybrid: return "hybrid";
  }
  return "unknown";
}

double CorrelatorOptions::EffectiveP() const {
  switch (type) {
    case CorrelationType::kCc: return 1.0;
    case CorrelationType::kPc: return 0.0;
    case CorrelationType::kHybrid: return hybrid_p;
  }
  return 1.0;
}

bool CorrelatorOptions::Check(std::string* error) const {
  if (window == WindowType::kTukey && !(tukey_alpha >= 0 && tukey_alpha <= 1))
    return Fail(error, "tukey_alpha must be in [0, 1]");
  std::string weight_error;
  if (!weight.Check(&weight_error)) return Fail(error, "weight: " + weight_error);
  if (type == CorrelationType::kHybrid && !(hybrid_p >= 0 && hybrid_p <= 1))
    return Fail(error, "hybrid_p must be in [0, 1]");
  if (!(max_shift_px >= 0) || !std::isfinite(max_shift_px))
    return Fail(error, "max_shift_px must be >= 0 (0 = a quarter of the frame)");
  if (top_k < 1) return Fail(error, "top_k must be >= 1");
  if (refine_candidates < 1) return Fail(error, "refine_candidates must be >= 1");
  if (oversample < 1 || oversample > 8) return Fail(error, "oversample must be in [1, 8]");
  if (!IsFftFriendlyEven(coarse_band_px))
    return Fail(error, "coarse_band_px must be a positive even 2^a 3^b 5^c");
  return true;
}

BandPeak MaximizeBandCorrelation(const std::complex<float>* half_band, Shape band, Shape frame,
                                 Shift initial, double max_step_px, double tolerance_px,
                                 int max_iterations, std::vector<std::complex<float>>* scratch) {
  BandPeak result;
  Shift x = initial;
  BandEval e = EvaluateBand(half_band, band, frame, x.x, x.y, scratch);
  for (int it = 1; it <= max_iterations; ++it) {
    double sx, sy;
    const double det = e.hxx * e.hyy - e.hxy * e.hxy;
    const bool concave = e.hxx < 0 && det > 0;
    if (concave) {  // Newton step
      sx = -(e.hyy * e.gx - e.hxy * e.gy) / det;
      sy = -(-e.hxy * e.gx + e.hxx * e.gy) / det;
    } else {  // not concave here: short gradient-ascent step
      const double g = std::hypot(e.gx, e.gy);
      if (!(g > 0)) break;
      sx = 0.25 * max_step_px * e.gx / g;
      sy = 0.25 * max_step_px * e.gy / g;
    }
    double norm = std::hypot(sx, sy);
    if (!std::isfinite(norm)) break;
    if (concave && norm < tolerance_px) {
      // Converged: Newton converges quadratically, so this last step is taken
      // without another evaluation (its error is ~ step^2, far below tolerance).
      x.x += sx;
      x.y += sy;
      e.v += 0.5 * (e.gx * sx + e.gy * sy);  // second-order value at the step
      result.iterations = it;
      result.converged = true;
      break;
    }
    if (norm > max_step_px) {
      sx *= max_step_px / norm;
      sy *= max_step_px / norm;
      norm = max_step_px;
    }
    // Backtracking: accept unless C clearly decreases (the relative slack
    // absorbs float rounding in the sums near the maximum).
    bool accepted = false;
    BandEval next;
    for (int attempt = 0; attempt < 12; ++attempt) {
      next = EvaluateBand(half_band, band, frame, x.x + sx, x.y + sy, scratch);
      if (next.v >= e.v - 1e-6 * std::abs(e.v)) {
        accepted = true;
        break;
      }
      sx *= 0.5;
      sy *= 0.5;
    }
    if (!accepted) break;
    x.x += sx;
    x.y += sy;
    e = next;
    result.iterations = it;
  }
  result.position = x;
  result.value = e.v;
  result.hxx = e.hxx;
  result.hyy = e.hyy;
  result.hxy = e.hxy;
  return result;
}

Shift CorrectWindowBias(const BandPeak& peak, Shift g) {
  const double det = peak.hxx * peak.hyy - peak.hxy * peak.hxy;
  if (!(peak.hxx < 0 && det > 0)) return peak.position;
  // C H^-1 g with H^-1 = [[hyy, -hxy], [-hxy, hxx]] / det.
  const double dx = peak.value * (peak.hyy * g.x - peak.hxy * g.y) / det;
  const double dy = peak.value * (-peak.hxy * g.x + peak.hxx * g.y) / det;
  return {peak.position.x + dx, peak.position.y + dy};
}

// ---------------------------------------------------------------------------

namespace {

// IEEE 754 binary16 conversions (round to nearest even), with the F16C
// instructions where the compiler targets them.
std::uint16_t FloatToHalf(float value) {
#if defined(__F16C__)
  return static_cast<std::uint16_t>(_cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT));
#else
  std::uint32_t x;
  std::memcpy(&x, &value, sizeof x);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const int exponent = static_cast<int>((x >> 23) & 0xff) - 127 + 15;
  std::uint32_t mantissa = x & 0x7fffffu;
  if (exponent >= 31) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (exponent <= 0) {                                                     // subnormal or zero
    if (exponent < -10) return static_cast<std::uint16_t>(sign);
    mantissa |= 0x800000u;
    const int shift = 14 - exponent;
    std::uint32_t half = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1), midpoint = 1u << (shift - 1);
    if (rest > midpoint || (rest == midpoint && (half & 1u))) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = (static_cast<std::uint32_t>(exponent) << 10) | (mantissa >> 13);
  const std::uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent
  return static_cast<std::uint16_t>(sign | half);
#endif
}

void DecodeHalf(const std::uint16_t* in, std::size_t n, float scale, float* out) {
  std::size_t i = 0;
#if defined(__F16C__)
  const __m256 s = _mm256_set1_ps(scale);
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtph_ps(h), s));
  }
  for (; i < n; ++i) out[i] = _cvtsh_ss(in[i]) * scale;
#else
  for (; i < n; ++i) {
    const std::uint32_t h = in[i];
    const std::uint32_t sign = (h & 0x8000u) << 16;
    const int exponent = static_cast<int>((h >> 10) & 0x1f);
    const std::uint32_t mantissa = h & 0x3ffu;
    float v;
    if (exponent == 0) {
      v = std::ldexp(static_cast<float>(mantissa), -24);
    } else if (exponent == 31) {
      v = mantissa ? std::nanf("") : INFINITY;
    } else {
      const std::uint32_t bits = (static_cast<std::uint32_t>(exponent - 15 + 127) << 23) | (mantissa << 13);
      std::memcpy(&v, &bits, sizeof v);
    }
    out[i] = (sign ? -v : v) * scale;
  }
#endif
}

// Stores `band` as half floats of band / scale, scale a power of two that
// puts the largest component at or below 2^14 (half floats reach 65504).
void EncodeBand(const std::vector<cfloat>& band, std::vector<std::uint16_t>* half, float* scale) {
  float largest = 0;
  for (const cfloat& v : band) largest = std::max({largest, std::fabs(v.real()), std::fabs(v.imag())});
  int exponent = 0;
  if (largest > 0) std::frexp(largest, &exponent);
  *scale = std::ldexp(1.0f, exponent - 14);
  const float inverse = 1.0f / *scale;
  half->resize(2 * band.size());
  const float* in = reinterpret_cast<const float*>(band.data());
  for (std::size_t i = 0; i < half->size(); ++i) (*half)[i] = FloatToHalf(in[i] * inverse);
}

}  // namespace

struct Correlator::Worker {
  Worker(Shape map, Shape coarse_map) : map_fft(map), coarse_fft(coarse_map) {}
  std::vector<cfloat> product;
  std::vector<float> decoded;  // half-float bands of a pair, decoded
  RealFft2d map_fft;
  std::vector<cfloat> coarse_product;
  RealFft2d coarse_fft;
  // CorrelateCoarse's raised-cosine weight over the coarse band for the
  // cutoff it was last computed for (a pair search uses one cutoff, so this
  // is computed once per worker rather than per pixel of every pair).
  std::vector<double> coarse_weight;
  double coarse_weight_cutoff = -1;
  std::vector<GridPeak> peaks;
  std::vector<int> cols;
  std::vector<cfloat> ex;
  std::vector<RefinedPeak> refined;   // Search: refined candidates
  std::vector<PeakCandidate> fitted;  // Search: the fitted candidates
  std::vector<GridPeak> grid;         // Search: grid peak of each output candidate
};

Correlator::Correlator(const CorrelatorOptions& options, Shape frame_shape, int num_workers)
    : options_(options),
      frame_shape_(frame_shape),
      preprocessor_(options.window, options.tukey_alpha,
                    frame_shape.Empty() ? Shape{1, 1} : frame_shape) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("Correlator: " + error);
  if (frame_shape.Empty()) throw std::invalid_argument("Correlator: empty frame shape");
  if (num_workers < 1) throw std::invalid_argument("Correlator: num_workers must be >= 1");
  p_ = options.EffectiveP();

  const FourierWeight weight(options.weight);
  const double limit = weight.band_limit_cycles_per_px();
  band_ = {BandSize(limit, frame_shape.rows), BandSize(limit, frame_shape.cols)};
  coarse_band_ = {std::min(options.coarse_band_px, frame_shape.rows),
                  std::min(options.coarse_band_px, frame_shape.cols)};
  map_shape_ = {band_.rows * options.oversample, band_.cols * options.oversample};
  coarse_map_shape_ = {coarse_band_.rows * options.oversample,
                       coarse_band_.cols * options.oversample};

  const int band_cols = band_.cols / 2 + 1;
  const std::size_t band_size = static_cast<std::size_t>(band_.rows) * band_cols;
  sqrt_weight_.resize(band_size);
  if (p_ < 1.0) residual_weight_.resize(band_size);
  row_extent_.assign(static_cast<std::size_t>(band_.rows), 0);
  for (int r = 0; r < band_.rows; ++r) {
    const double ky = static_cast<double>(SignedFrequency(r, band_.rows)) / frame_shape.rows;
    for (int c = 0; c < band_cols; ++c) {
      const double w = weight.At(static_cast<double>(c) / frame_shape.cols, ky);
      const std::size_t idx = static_cast<std::size_t>(r) * band_cols + c;
      sqrt_weight_[idx] = static_cast<float>(std::sqrt(w));
      if (p_ < 1.0) residual_weight_[idx] = static_cast<float>(std::pow(w, 1.0 - p_));
      if (w > 0) row_extent_[r] = c + 1;
    }
  }

  const double half_rows = 0.5 * frame_shape.rows, half_cols = 0.5 * frame_shape.cols;
  max_shift_ = options.max_shift_px > 0
                   ? Shift{std::min(options.max_shift_px, half_cols),
                           std::min(options.max_shift_px, half_rows)}
                   : Shift{0.25 * frame_shape.cols, 0.25 * frame_shape.rows};

  // The window's own coarse band, which CoarseRunCorrelation sums like a
  // frame's: the window is separable, so its transform is a product of two
  // 1-D transforms.
  const int coarse_cols = coarse_band_.cols / 2 + 1;
  coarse_window_.resize(static_cast<std::size_t>(coarse_band_.rows) * coarse_cols);
  std::vector<std::complex<double>> window_cols(static_cast<std::size_t>(coarse_cols));
  for (int c = 0; c < coarse_cols; ++c) {
    window_cols[static_cast<std::size_t>(c)] = WindowTransform(preprocessor_.col_window(), c);
  }
  for (int r = 0; r < coarse_band_.rows; ++r) {
    const std::complex<double> row =
        WindowTransform(preprocessor_.row_window(), SignedFrequency(r, coarse_band_.rows));
    for (int c = 0; c < coarse_cols; ++c) {
      coarse_window_[static_cast<std::size_t>(r) * coarse_cols + c] = row * window_cols[static_cast<std::size_t>(c)];
    }
  }

  forward_fft_ = std::make_unique<RealFft2d>(frame_shape);
  workers_.reserve(static_cast<std::size_t>(num_workers));
  for (int w = 0; w < num_workers; ++w) {
    auto worker = std::make_unique<Worker>(map_shape_, coarse_map_shape_);
    worker->product.resize(band_size);
    worker->coarse_product.resize(static_cast<std::size_t>(coarse_band_.rows) *
                                  (coarse_band_.cols / 2 + 1));
    const std::size_t top_k = static_cast<std::size_t>(options.top_k);
    worker->peaks.reserve(top_k + 1);
    worker->refined.reserve(top_k);
    worker->fitted.reserve(top_k);
    worker->grid.reserve(top_k);
    workers_.push_back(std::move(worker));
  }
}

Correlator::~Correlator() = default;

std::unique_ptr<const Correlator::CachedFrame> Correlator::Prepare(FrameView frame,
                                                                  const SpectrumTap* tap) const {
  if (frame.shape() != frame_shape_) {
    throw std::invalid_argument("Correlator::Prepare: frame shape does not match");
  }
  const int own_columns = std::max(band_.cols, coarse_band_.cols) / 2 + 1;
  if (tap != nullptr && !(tap->columns >= 1 && tap->columns <= forward_fft_->spectrum_cols())) {
    throw std::invalid_argument("Correlator::Prepare: tap column count out of range");
  }
  std::lock_guard<std::mutex> prepare_lock(prepare_mutex_);
  preprocessor_.Apply(frame, forward_fft_->real());
  // Only the columns the two crops below (and a tap) read are transformed.
  forward_fft_->ForwardColumns(tap != nullptr ? std::max(own_columns, tap->columns) : own_columns);
  if (tap != nullptr && tap->read) tap->read(forward_fft_->spectrum(), forward_fft_->spectrum_cols());

  auto cached = std::make_unique<CachedFrame>();
  const int band_cols = band_.cols / 2 + 1;
  cached->band.resize(static_cast<std::size_t>(band_.rows) * band_cols);
  CropSpectrum(forward_fft_->spectrum(), frame_shape_, band_, sqrt_weight_.data(),
               cached->band.data());
  if (options_.band_fp16) {
    // The energy below is taken of the rounded band the pairs will use, so a
    // frame against itself still has height 1 and |height| <= 1 holds exactly.
    EncodeBand(cached->band, &cached->band_half, &cached->band_scale);
    DecodeHalf(cached->band_half.data(), cached->band_half.size(), cached->band_scale,
               reinterpret_cast<float*>(cached->band.data()));
  }
  // E = sum W |F|^{2p} = sum W^{1-p} |G|^{2p} with G = sqrt(W) F, over the
  // Hermitian-complete band (columns > 0 count twice).
  double energy = 0;
  for (int r = 0; r < band_.rows; ++r) {
    for (int c = 0; c < band_cols; ++c) {
      const std::size_t idx = static_cast<std::size_t>(r) * band_cols + c;
      const double g2 = std::norm(cached->band[idx]);
      double term = g2;
      if (p_ < 1.0) term = g2 > 0 ? residual_weight_[idx] * std::pow(g2, p_) : 0.0;
      energy += (c == 0 ? 1.0 : 2.0) * term;
    }
  }
  cached->energy = energy;
  cached->coarse.resize(static_cast<std::size_t>(coarse_band_.rows) * (coarse_band_.cols / 2 + 1));
  CropSpectrum(forward_fft_->spectrum(), frame_shape_, coarse_band_, nullptr,
               cached->coarse.data());
  if (options_.band_fp16) std::vector<cfloat>().swap(cached->band);
  return cached;
}

int Correlator::Add(std::unique_ptr<const CachedFrame> bands) {
  if (bands == nullptr) throw std::invalid_argument("Correlator::Add: no bands");
  std::unique_lock<std::shared_mutex> lock(frames_mutex_);
  frames_.push_back(std::move(bands));
  return static_cast<int>(frames_.size()) - 1;
}

int Correlator::AddFrame(FrameView frame) { return Add(Prepare(frame)); }

const Correlator::CachedFrame& Correlator::Slot(int index) const {
  std::shared_lock<std::shared_mutex> lock(frames_mutex_);
  if (index < 0 || index >= static_cast<int>(frames_.size())) {
    throw std::invalid_argument("Correlator: no frame in slot " + std::to_string(index));
  }
  return *frames_[static_cast<std::size_t>(index)];
}

Correlator::Worker& Correlator::WorkerScratch(int worker) const {
  if (worker < 0 || worker >= num_workers()) {
    throw std::invalid_argument("Correlator: bad worker id " + std::to_string(worker));
  }
  return *workers_[static_cast<std::size_t>(worker)];
}

int Correlator::num_frames() const {
  std::shared_lock<std::shared_mutex> lock(frames_mutex_);
  return static_cast<int>(frames_.size());
}

std::size_t Correlator::cache_bytes() const {
  const std::size_t band_bytes = (options_.band_fp16 ? sizeof(cfloat) / 2 : sizeof(cfloat)) *
                                 static_cast<std::size_t>(band_.rows) * (band_.cols / 2 + 1);
  const std::size_t per_frame =
      band_bytes + sizeof(cfloat) * static_cast<std::size_t>(coarse_band_.rows) * (coarse_band_.cols / 2 + 1);
  return per_frame * static_cast<std::size_t>(num_frames());
}

double Correlator::ComputeProduct(const CachedFrame& a, const CachedFrame& b, Worker& w,
                                  double* power) const {
  const int band_cols = band_.cols / 2 + 1;
  const float* pa = reinterpret_cast<const float*>(a.band.data());
  const float* pb = reinterpret_cast<const float*>(b.band.data());
  if (a.band.empty() || b.band.empty()) {  // stored as half floats
    const std::size_t n = 2 * static_cast<std::size_t>(band_.rows) * band_cols;
    w.decoded.resize(2 * n);
    if (a.band.empty()) DecodeHalf(a.band_half.data(), n, a.band_scale, w.decoded.data());
    if (b.band.empty()) DecodeHalf(b.band_half.data(), n, b.band_scale, w.decoded.data() + n);
    if (a.band.empty()) pa = w.decoded.data();
    if (b.band.empty()) pb = w.decoded.data() + n;
  }
  float* out = reinterpret_cast<float*>(w.product.data());
  const float exponent = static_cast<float>(0.5 * (p_ - 1.0));  // (|m|^2)^((p-1)/2) = |m|^(p-1)
  double sum_power = 0;
  for (int r = 0; r < band_.rows; ++r) {
    const std::size_t row = static_cast<std::size_t>(r) * band_cols;
    const int n = row_extent_[static_cast<std::size_t>(r)];
    // conj(a) * b, then the hybrid magnitude, then |h|^2: three loops, so
    // the first two have no reduction and vectorise (one loop with the sum
    // ran scalar, at ~190 k instructions per 512^2 pair).
    const float* ra = pa + 2 * row;
    const float* rb = pb + 2 * row;
    float* ro = out + 2 * row;
    for (int c = 0; c < n; ++c) {
      const float ar = ra[2 * c], ai = ra[2 * c + 1], br = rb[2 * c], bi = rb[2 * c + 1];
      ro[2 * c] = ar * br + ai * bi;
      ro[2 * c + 1] = ar * bi - ai * br;
    }
    if (p_ < 1.0) {
      const float* rw = residual_weight_.data() + row;
      for (int c = 0; c < n; ++c) {
        const float hr = ro[2 * c], hi = ro[2 * c + 1];
        const float m2 = hr * hr + hi * hi;
        float factor = 0;
        if (m2 > 0) {
          const float shape = p_ == 0.0   ? 1.0f / std::sqrt(m2)
                              : p_ == 0.5 ? 1.0f / std::sqrt(std::sqrt(m2))
                                          : std::pow(m2, exponent);
          factor = shape * rw[c];
        }
        ro[2 * c] = hr * factor;
        ro[2 * c + 1] = hi * factor;
      }
    }
    // Column 0 once, the others twice (Hermitian completion), summed in
    // kLanes partial sums: a fixed order, whatever the compiler makes of it.
    constexpr int kLanes = 16;
    float lanes[kLanes] = {};
    const int floats = 2 * n;
    int f = 2;
    for (; f + kLanes <= floats; f += kLanes) {
      for (int l = 0; l < kLanes; ++l) lanes[l] += ro[f + l] * ro[f + l];
    }
    float rest = 0;
    for (; f < floats; ++f) rest += ro[f] * ro[f];
    for (int l = 0; l < kLanes; ++l) rest += lanes[l];
    const float first = n > 0 ? ro[0] * ro[0] + ro[1] * ro[1] : 0.0f;
    sum_power += first + 2.0f * rest;
    std::fill(w.product.begin() + static_cast<std::ptrdiff_t>(row + n),
              w.product.begin() + static_cast<std::ptrdiff_t>(row + band_cols), cfloat(0, 0));
  }
  if (power) *power = sum_power;
  const double norm = std::sqrt(a.energy * b.energy);
  return norm > 0 ? norm : 1.0;
}

PairMeasurement Correlator::Correlate(int i, int j, int worker) const {
  return Correlate(i, j, worker, std::nullopt, 0.0);
}

PairMeasurement Correlator::Correlate(int i, int j, int worker, std::optional<Shift> predicted,
                                      double radius_px) const {
  if (predicted && !(radius_px > 0)) {
    throw std::invalid_argument("Correlator::Correlate: radius_px must be > 0");
  }
  const Shift center = predicted ? *predicted : Shift{0, 0};
  const Shift half = predicted ? Shift{radius_px, radius_px} : max_shift_;
  return Search(i, j, WorkerScratch(worker), center, half, options_.refine_candidates);
}

PairMeasurement Correlator::CorrelateEveryCandidate(int i, int j, int worker) const {
  return Search(i, j, WorkerScratch(worker), Shift{0, 0}, max_shift_, options_.top_k);
}

PairMeasurement Correlator::Search(int i, int j, Worker& w, Shift center, Shift half, int refine) const {
  const CachedFrame& a = Slot(i);
  const CachedFrame& b = Slot(j);
  PairMeasurement result;
  result.i = i;
  result.j = j;
  double power = 0;
  const double norm = ComputeProduct(a, b, w, &power);
  ScatterPadded(w.product.data(), band_, w.map_fft);
  w.map_fft.Inverse();
  const MapView map{w.map_fft.real(), map_shape_.rows, map_shape_.cols,
                    static_cast<double>(frame_shape_.rows) / map_shape_.rows,
                    static_cast<double>(frame_shape_.cols) / map_shape_.cols};
  FindLocalMaxima(map, center, half, options_.top_k, &w.peaks, &w.cols);
  if (w.peaks.empty()) return result;

  FitCandidates(map, center, half, norm, frame_shape_, &w.peaks, &result.candidates);
  if (w.peaks.empty()) return result;

  // Refine the leading candidates (by fitted height) on the band, each from
  // its fit (unwrapped: C is periodic), until refine_candidates distinct ones
  // inside the window are kept. Sampled and fitted heights of a lattice of
  // near-equal peaks differ by the sampling phase; the refined heights carry
  // only the window/content envelope, which favours the true translate.
  const double step = std::max(map.dx, map.dy);
  const int num_fitted = static_cast<int>(w.peaks.size());
  w.refined.clear();
  int next = 0;
  for (; next < num_fitted && static_cast<int>(w.refined.size()) < refine; ++next) {
    const BandPeak peak = MaximizeBandCorrelation(w.product.data(), band_, frame_shape_,
                                                  FitGridPeak(map, w.peaks[next]), step, 1e-3, 20,
                                                  &w.ex);
    // A peak Newton carried out of the window climbed onto a maximum outside
    // it (a wider search would find that one itself): drop it.
    if (std::abs(peak.position.x - center.x) > half.x + kWindowSlackPx ||
        std::abs(peak.position.y - center.y) > half.y + kWindowSlackPx) {
      continue;
    }
    bool merged = false;
    for (RefinedPeak& kept : w.refined) {
      if (SameMaximum(kept.peak.position, peak.position, frame_shape_)) {
        if (peak.value > kept.peak.value) kept = {peak, next};
        merged = true;
        break;
      }
    }
    if (!merged) w.refined.push_back({peak, next});
  }
  std::sort(w.refined.begin(), w.refined.end(), [](const RefinedPeak& x, const RefinedPeak& y) {
    return x.peak.value > y.peak.value || (x.peak.value == y.peak.value && x.fitted < y.fitted);
  });

  // Candidates: the refined ones by refined height, then the unrefined ones
  // (fitted positions/heights) not on a refined maximum, by fitted height.
  // w.peaks is reused to hold the grid peak of each output candidate.
  std::vector<PeakCandidate>& out = result.candidates;
  w.fitted.assign(out.begin(), out.end());
  out.clear();
  w.grid.clear();
  for (const RefinedPeak& r : w.refined) {
    const Shift position = options_.correct_window_bias
                               ? CorrectWindowBias(r.peak, preprocessor_.OverlapLogGradient(r.peak.position))
                               : r.peak.position;
    out.push_back({{WrapShift(position.x, frame_shape_.cols), WrapShift(position.y, frame_shape_.rows)},
                   r.peak.value / norm,
                   r.peak.converged});
    w.grid.push_back(w.peaks[static_cast<std::size_t>(r.fitted)]);
  }
  for (int k = next; k < num_fitted; ++k) {
    const PeakCandidate& c = w.fitted[static_cast<std::size_t>(k)];
    bool on_refined = false;
    for (const RefinedPeak& r : w.refined) {
      if (SameMaximum(r.peak.position, c.j_from_i, frame_shape_)) on_refined = true;
    }
    if (on_refined) continue;
    out.push_back(c);
    w.grid.push_back(w.peaks[static_cast<std::size_t>(k)]);
  }
  if (out.empty()) return result;

  // RMS away from the peak: total map power by Parseval (sum_x map^2 =
  // map pixels * sum_k |h|^2) minus a block of 2 band pixels around the peak.
  int excluded = 0;
  const double block = BlockPower(map, w.grid[0], 2 * options_.oversample, &excluded);
  const double pixels = static_cast<double>(map_shape_.Pixels());
  const double rest = std::max(pixels * power - block, 0.0);
  const double rms = std::sqrt(rest / std::max(pixels - excluded, 1.0));
  result.peak_to_rms = rms > 0 ? out[0].height * norm / rms : 0.0;
  return result;
}

PeakCandidate Correlator::Refine(int i, int j, Shift initial, int worker) const {
  Worker& w = WorkerScratch(worker);
  const double norm = ComputeProduct(Slot(i), Slot(j), w, nullptr);
  const double step = std::max(static_cast<double>(frame_shape_.rows) / map_shape_.rows,
                               static_cast<double>(frame_shape_.cols) / map_shape_.cols);
  const BandPeak best = MaximizeBandCorrelation(w.product.data(), band_, frame_shape_, initial,
                                                step, 1e-3, 30, &w.ex);
  const Shift position = options_.correct_window_bias
                             ? CorrectWindowBias(best, preprocessor_.OverlapLogGradient(best.position))
                             : best.position;
  return {{WrapShift(position.x, frame_shape_.cols), WrapShift(position.y, frame_shape_.rows)},
          best.value / norm,
          best.converged};
}

Frame Correlator::CorrelationMap(int i, int j, int worker) const {
  Worker& w = WorkerScratch(worker);
  const double norm = ComputeProduct(Slot(i), Slot(j), w, nullptr);
  ScatterPadded(w.product.data(), band_, w.map_fft);
  w.map_fft.Inverse();
  Frame map(map_shape_);
  for (std::int64_t k = 0; k < map_shape_.Pixels(); ++k) {
    map.data()[k] = static_cast<float>(w.map_fft.real()[k] / norm);
  }
  return map;
}

std::vector<double> Correlator::CoarseRunCorrelation(const std::vector<int>& first,
                                                     const std::vector<Shift>& first_shifts,
                                                     const std::vector<int>& second,
                                                     const std::vector<Shift>& second_shifts,
                                                     const std::vector<Shift>& offsets,
                                                     double cutoff_cycles_per_px) const {
  if (first.empty() || second.empty() || first.size() != first_shifts.size() ||
      second.size() != second_shifts.size()) {
    throw std::invalid_argument("Correlator::CoarseRunCorrelation: empty run or size mismatch");
  }
  if (!(cutoff_cycles_per_px > 0)) {
    throw std::invalid_argument("Correlator::CoarseRunCorrelation: cutoff must be > 0");
  }
  using cdouble = std::complex<double>;
  const int rows = coarse_band_.rows;
  const int band_cols = coarse_band_.cols / 2 + 1;
  const std::size_t size = static_cast<std::size_t>(rows) * band_cols;
  std::vector<double> lowpass;
  CoarseLowPass(coarse_band_, frame_shape_, cutoff_cycles_per_px, &lowpass);
  // All positions relative to their common mean: the sums are images on the
  // frame's cyclic grid, and runs about their mean cover its middle, away
  // from the seam at its edges.
  Shift centre;
  for (const Shift& f : first_shifts) centre += f;
  for (const Shift& f : second_shifts) centre += f;
  centre = centre * (1.0 / static_cast<double>(first_shifts.size() + second_shifts.size()));
  // A run's low-passed frames and windows, each moved to its position:
  // sum_f F_f(k) exp(2 pi i k . (s_f - centre)) (a frame's content then sits
  // where the specimen is), in double.
  struct RunSum {
    std::vector<cdouble> content, weight;
  };
  const auto run_sum = [&](const std::vector<int>& run, const std::vector<Shift>& shifts) {
    RunSum sum{std::vector<cdouble>(size), std::vector<cdouble>(size)};
    std::vector<cdouble> column_phase(static_cast<std::size_t>(band_cols));
    for (std::size_t n = 0; n < run.size(); ++n) {
      const CachedFrame& frame = Slot(run[n]);
      if (frame.coarse.size() != size) {
        throw std::invalid_argument("Correlator::CoarseRunCorrelation: slot " + std::to_string(run[n]) +
                                    " has no coarse band");
      }
      const Shift s = shifts[n] - centre;
      const double ax = 2 * M_PI * s.x / frame_shape_.cols;
      const double ay = 2 * M_PI * s.y / frame_shape_.rows;
      const cdouble step_x(std::cos(ax), std::sin(ax));
      cdouble phase(1, 0);
      for (int c = 0; c < band_cols; ++c, phase *= step_x) column_phase[static_cast<std::size_t>(c)] = phase;
      for (int r = 0; r < rows; ++r) {
        const double fy = SignedFrequency(r, rows);
        const cdouble row_phase(std::cos(ay * fy), std::sin(ay * fy));
        const std::size_t row = static_cast<std::size_t>(r) * band_cols;
        for (int c = 0; c < band_cols; ++c) {
          const cdouble shift = row_phase * column_phase[static_cast<std::size_t>(c)];
          sum.content[row + c] += cdouble(frame.coarse[row + c]) * shift;
          sum.weight[row + c] += coarse_window_[row + c] * shift;
        }
      }
    }
    return sum;
  };
  const RunSum a = run_sum(first, first_shifts);
  const RunSum b = run_sum(second, second_shifts);

  // Images of a band on the coarse map grid (one map transform).
  RealFft2d fft(coarse_map_shape_);
  const std::size_t pixels = static_cast<std::size_t>(coarse_map_shape_.Pixels());
  std::vector<cfloat> band(size);
  const auto image = [&](const std::vector<cdouble>& spectrum, std::vector<float>* out) {
    for (std::size_t idx = 0; idx < size; ++idx) band[idx] = cfloat(spectrum[idx] * lowpass[idx]);
    ScatterPadded(band.data(), coarse_band_, fft);
    fft.Inverse();
    out->assign(fft.real(), fft.real() + pixels);
  };
  // Their images on the coarse map grid, compared at each offset.
  std::vector<float> a_content, a_weight, b_content, b_weight;
  image(a.content, &a_content);
  image(a.weight, &a_weight);
  image(b.content, &b_content);
  image(b.weight, &b_weight);
  const Shift px_per_cell{static_cast<double>(frame_shape_.cols) / coarse_map_shape_.cols,
                          static_cast<double>(frame_shape_.rows) / coarse_map_shape_.rows};
  return RunCorrelationAtOffsets({a_content.data(), a_weight.data()}, {b_content.data(), b_weight.data()},
                                 coarse_map_shape_, px_per_cell, offsets);
}

PairMeasurement Correlator::CorrelateCoarse(int i, int j, double cutoff_cycles_per_px,
                                            int worker) const {
  if (!(cutoff_cycles_per_px > 0)) {
    throw std::invalid_argument("Correlator::CorrelateCoarse: cutoff must be > 0");
  }
  Worker& w = WorkerScratch(worker);
  const CachedFrame& a = Slot(i);
  const CachedFrame& b = Slot(j);
  const int band_cols = coarse_band_.cols / 2 + 1;
  if (w.coarse_weight_cutoff != cutoff_cycles_per_px) {
    CoarseLowPass(coarse_band_, frame_shape_, cutoff_cycles_per_px, &w.coarse_weight);
    w.coarse_weight_cutoff = cutoff_cycles_per_px;
  }
  double energy_a = 0, energy_b = 0, power = 0;
  for (int r = 0; r < coarse_band_.rows; ++r) {
    for (int c = 0; c < band_cols; ++c) {
      const std::size_t idx = static_cast<std::size_t>(r) * band_cols + c;
      const double weight = w.coarse_weight[idx];
      const double mult = c == 0 ? 1.0 : 2.0;
      energy_a += mult * weight * std::norm(a.coarse[idx]);
      energy_b += mult * weight * std::norm(b.coarse[idx]);
      w.coarse_product[idx] = static_cast<float>(weight) * std::conj(a.coarse[idx]) * b.coarse[idx];
      power += mult * std::norm(w.coarse_product[idx]);
    }
  }
  const double norm = energy_a > 0 && energy_b > 0 ? std::sqrt(energy_a * energy_b) : 1.0;
  ScatterPadded(w.coarse_product.data(), coarse_band_, w.coarse_fft);
  w.coarse_fft.Inverse();
  const MapView map{w.coarse_fft.real(), coarse_map_shape_.rows, coarse_map_shape_.cols,
                    static_cast<double>(frame_shape_.rows) / coarse_map_shape_.rows,
                    static_cast<double>(frame_shape_.cols) / coarse_map_shape_.cols};
  PairMeasurement result;
  result.i = i;
  result.j = j;
  FindLocalMaxima(map, Shift{0, 0}, max_shift_, options_.top_k, &w.peaks, &w.cols);
  if (w.peaks.empty()) return result;
  FitCandidates(map, Shift{0, 0}, max_shift_, norm, frame_shape_, &w.peaks, &result.candidates);
  if (w.peaks.empty()) return result;
  const BandPeak best = MaximizeBandCorrelation(
      w.coarse_product.data(), coarse_band_, frame_shape_, FitGridPeak(map, w.peaks[0]),
      std::max(map.dx, map.dy), 1e-3, 20, &w.ex);
  // No window-bias correction here: the coarse peak is broad, so the
  // stationary-content envelope model would move it by pixels when the
  // content is localised; the coarse stage only has to pick the translate.
  const Shift position = best.position;
  PeakCandidate& c0 = result.candidates[0];
  c0.j_from_i = {WrapShift(position.x, frame_shape_.cols), WrapShift(position.y, frame_shape_.rows)};
  c0.height = best.value / norm;
  c0.refined = best.converged;
  result.has_coarse = true;
  result.coarse_j_from_i = c0.j_from_i;
  // RMS away from the peak, as in Search (Parseval minus a block of 2 coarse
  // band pixels around the peak).
  int excluded = 0;
  const double block = BlockPower(map, w.peaks[0], 2 * options_.oversample, &excluded);
  const double pixels = static_cast<double>(coarse_map_shape_.Pixels());
  const double rest = std::max(pixels * power - block, 0.0);
  const double rms = std::sqrt(rest / std::max(pixels - excluded, 1.0));
  result.peak_to_rms = rms > 0 ? best.value / rms : 0.0;
  return result;
}

}  // namespace livealign
