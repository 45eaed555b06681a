#include "core/lattice.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "core/fft.hpp"

namespace livealign {
namespace {

double Dot(Shift u, Shift v) { return u.x * v.x + u.y * v.y; }
double Cross(Shift u, Shift v) { return u.x * v.y - u.y * v.x; }

// Gauss (Lagrange) reduction of a 2-D basis. Terminates in O(log) steps for any
// non-degenerate basis; the iteration cap only guards against NaN inputs.
void GaussReduce(Shift* a, Shift* b) {
  for (int iteration = 0; iteration < 200; ++iteration) {
    if (Dot(*b, *b) < Dot(*a, *a)) std::swap(*a, *b);
    const double m = std::round(Dot(*a, *b) / Dot(*a, *a));
    if (m == 0) return;
    *b -= *a * m;
  }
}

// Power spectrum with Hermitian symmetry, addressable by signed frequencies.
class PowerSpectrum {
 public:
  PowerSpectrum(int rows, int cols, std::vector<double> half)
      : rows_(rows), cols_(cols), half_cols_(cols / 2 + 1), half_(std::move(half)) {}

  double at(int ky, int kx) const {
    kx = ((kx % cols_) + cols_) % cols_;
    if (kx >= half_cols_) {  // mirror: P(ky, kx) = P(-ky, -kx)
      kx = cols_ - kx;
      ky = -ky;
    }
    ky = ((ky % rows_) + rows_) % rows_;
    return half_[static_cast<std::size_t>(ky) * half_cols_ + kx];
  }
  // The stored half plane: element r * (cols / 2 + 1) + kx.
  const std::vector<double>& half() const { return half_; }

 private:
  int rows_, cols_, half_cols_;
  std::vector<double> half_;
};

// Offset of a parabola through (-1, m), (0, c), (1, p), clamped to half a bin.
double ParabolaOffset(double m, double c, double p) {
  const double denominator = m - 2 * c + p;
  if (!(denominator < 0)) return 0.0;
  return std::clamp(0.5 * (m - p) / denominator, -0.5, 0.5);
}

double SafeLog(double v) { return std::log(std::max(v, 1e-300)); }

struct RawPeak {
  int ky = 0, kx = 0;
  double power = 0;
  double significance = 0;
};

}  // namespace

Lattice Lattice::Reduced(Shift a, Shift b) {
  if (!std::isfinite(a.x) || !std::isfinite(a.y) || !std::isfinite(b.x) ||
      !std::isfinite(b.y)) {
    throw std::invalid_argument("Lattice::Reduced: non-finite basis vector");
  }
  const double scale = std::max(Dot(a, a), Dot(b, b));
  if (scale <= 0 || std::abs(Cross(a, b)) <= 1e-9 * scale) {
    throw std::invalid_argument("Lattice::Reduced: basis vectors are zero or collinear");
  }
  GaussReduce(&a, &b);
  return Lattice{a, b};
}

double Lattice::ShortestSpacing() const { return std::min(a.Norm(), b.Norm()); }

double Lattice::CellArea() const { return std::abs(Cross(a, b)); }

LatticeVector Lattice::NearestLatticeVector(Shift v) const {
  const double det = Cross(a, b);
  if (det == 0) throw std::invalid_argument("Lattice::NearestLatticeVector: degenerate lattice");
  // Coordinates (na, nb) with v = na a + nb b, by Cramer's rule.
  const double fa = Cross(v, b) / det;
  const double fb = Cross(a, v) / det;
  const int ra = static_cast<int>(std::lround(fa));
  const int rb = static_cast<int>(std::lround(fb));
  // Fast path: a rounded point closer than half the shortest spacing is the
  // nearest one (every other lattice point is then farther away).
  const Shift rounded = Vector(ra, rb);
  const Shift rounded_miss = v - rounded;
  const double shortest_squared = std::min(a.x * a.x + a.y * a.y, b.x * b.x + b.y * b.y);
  if (rounded_miss.x * rounded_miss.x + rounded_miss.y * rounded_miss.y < 0.25 * shortest_squared) {
    return LatticeVector{ra, rb, rounded};
  }
  LatticeVector best;
  double best_distance = std::numeric_limits<double>::infinity();
  for (int da = -1; da <= 1; ++da) {
    for (int db = -1; db <= 1; ++db) {
      const Shift candidate = Vector(ra + da, rb + db);
      const Shift miss = v - candidate;
      const double distance = miss.x * miss.x + miss.y * miss.y;  // squared: hot path
      if (distance < best_distance) {
        best_distance = distance;
        best = LatticeVector{ra + da, rb + db, candidate};
      }
    }
  }
  return best;
}

std::ostream& operator<<(std::ostream& os, const Lattice& lattice) {
  return os << "lattice{a " << lattice.a << ", b " << lattice.b << "}";
}

bool LatticeEstimateOptions::Check(std::string* error) const {
  auto fail = [error](const char* message) {
    if (error) *error = message;
    return false;
  };
  if (!(min_significance > 1)) return fail("min_significance must be > 1");
  if (!(min_cycles_per_frame >= 1)) return fail("min_cycles_per_frame must be >= 1");
  if (max_peaks < 2) return fail("max_peaks must be >= 2");
  if (!(index_tolerance_bins > 0 && index_tolerance_bins < 5)) {
    return fail("index_tolerance_bins must be in (0, 5)");
  }
  if (min_indexed_peaks < 4) return fail("min_indexed_peaks must be >= 4");
  return true;
}

LatticeEstimate EstimateLattice(FrameView image, const LatticeEstimateOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("EstimateLattice: " + error);
  if (image.data() == nullptr || image.rows() < 16 || image.cols() < 16) {
    throw std::invalid_argument("EstimateLattice: image must be at least 16 x 16");
  }
  // The spectrum of a centred crop to the largest FFT-friendly size
  // (FftFriendlySizeAtMost): a lattice does not depend on where it is cut, and the
  // best-covered region of a mosaic often has a prime side, which FFTW
  // transforms several times slower (509^2: 15 ms against 6 ms at 512^2).
  const int rows = FftFriendlySizeAtMost(image.rows());
  const int cols = FftFriendlySizeAtMost(image.cols());
  const int row0 = (image.rows() - rows) / 2;
  const int col0 = (image.cols() - cols) / 2;
  const int half_cols = cols / 2 + 1;
  LatticeEstimate estimate;

  // Mean-subtracted, Hann-windowed copy: the window removes the edge cross
  // from the spectrum that would otherwise produce axis-aligned maxima.
  double sum = 0;
  std::int64_t finite = 0;
  for (int r = 0; r < rows; ++r) {
    const float* row = image.row(row0 + r) + col0;
    for (int c = 0; c < cols; ++c) {
      if (std::isfinite(row[c])) {
        sum += row[c];
        ++finite;
      }
    }
  }
  const double mean = finite > 0 ? sum / static_cast<double>(finite) : 0.0;
  RealFft2d fft(Shape{rows, cols});
  std::vector<double> window_x(cols), window_y(rows);
  for (int c = 0; c < cols; ++c) window_x[c] = 0.5 - 0.5 * std::cos(2 * M_PI * c / cols);
  for (int r = 0; r < rows; ++r) window_y[r] = 0.5 - 0.5 * std::cos(2 * M_PI * r / rows);
  for (int r = 0; r < rows; ++r) {
    const float* row = image.row(row0 + r) + col0;
    float* out = fft.real() + static_cast<std::size_t>(r) * cols;
    for (int c = 0; c < cols; ++c) {
      out[c] = std::isfinite(row[c]) ? static_cast<float>((row[c] - mean) * window_y[r] * window_x[c]) : 0.0f;
    }
  }
  fft.Forward();
  std::vector<double> half_power(fft.spectrum_size());
  double max_power = 0;
  for (std::size_t i = 0; i < half_power.size(); ++i) {
    half_power[i] = std::norm(std::complex<double>(fft.spectrum()[i]));
    max_power = std::max(max_power, half_power[i]);
  }
  if (!(max_power > 0)) {
    estimate.message = "flat image: no spectral power";
    return estimate;
  }

  // Radius in cycles per frame along the shorter side, so rings are round in
  // physical frequency even when rows != cols.
  const double short_side = std::min(rows, cols);
  auto ring_of = [&](int ky, int kx) {
    const double fy = static_cast<double>(ky) / rows;
    const double fx = static_cast<double>(kx) / cols;
    return std::hypot(fx, fy) * short_side;
  };
  const int num_rings = static_cast<int>(std::ceil(ring_of(rows / 2, cols / 2))) + 2;
  // Each bin's radius and ring, once: the background and the peak search
  // below both need them, and hypot + lround per bin twice was a tenth of
  // `register`'s instructions.
  std::vector<double> radius(half_power.size());
  std::vector<int> ring_index(half_power.size());
  std::vector<std::size_t> ring_start(static_cast<std::size_t>(num_rings) + 1, 0);
  for (int r = 0; r < rows; ++r) {
    const int ky = SignedFrequency(r, rows);
    const double fy = static_cast<double>(ky) / rows;
    for (int kx = 0; kx < half_cols; ++kx) {
      const std::size_t i = static_cast<std::size_t>(r) * half_cols + kx;
      const double fx = static_cast<double>(kx) / cols;
      const double rho = std::sqrt(fx * fx + fy * fy) * short_side;
      radius[i] = rho;
      ring_index[i] = static_cast<int>(rho + 0.5);  // rho >= 0: lround
      ++ring_start[static_cast<std::size_t>(ring_index[i]) + 1];
    }
  }
  // The powers grouped by ring (a counting sort), so that the rings r - d ..
  // r + d pooled below are one contiguous range.
  for (int ring = 0; ring < num_rings; ++ring) ring_start[ring + 1] += ring_start[ring];
  std::vector<double> by_ring(half_power.size());
  {
    std::vector<std::size_t> next(ring_start.begin(), ring_start.end() - 1);
    for (std::size_t i = 0; i < half_power.size(); ++i) by_ring[next[ring_index[i]]++] = half_power[i];
  }
  // Mean background per ring from the median (robust to the few Bragg pixels);
  // pooled with neighbouring rings when a ring is small (near the centre).
  std::vector<double> background(num_rings, 0.0);
  const double floor_power = 1e-12 * max_power;
  std::vector<double> values;
  for (int ring = 0; ring < num_rings; ++ring) {
    auto pooled = [&](int d) {
      return ring_start[std::min(num_rings, ring + d + 1)] - ring_start[std::max(0, ring - d)];
    };
    int d = 0;
    while (pooled(d) < 32 && d + 1 < num_rings) ++d;
    const std::size_t first = ring_start[std::max(0, ring - d)];
    if (pooled(d) == 0) continue;
    const auto begin = by_ring.begin() + static_cast<std::ptrdiff_t>(first);
    const auto end = begin + static_cast<std::ptrdiff_t>(pooled(d));
    double median = 0;
    if (d == 0) {
      // A ring on its own (all but the few innermost): its slice is reordered
      // in place, which leaves every ring's values where pooling finds them.
      const auto middle = begin + (end - begin) / 2;
      std::nth_element(begin, middle, end);
      median = *middle;
    } else {
      values.assign(begin, end);
      const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
      std::nth_element(values.begin(), middle, values.end());
      median = *middle;
    }
    background[ring] = std::max(median / std::log(2.0), floor_power);
  }
  const PowerSpectrum power(rows, cols, std::move(half_power));

  // Significant local maxima in the half plane kx >= 0 (the other half is the
  // mirror image); on the kx = 0 and Nyquist columns keep only ky > 0.
  std::vector<RawPeak> raw;
  for (int r = 0; r < rows; ++r) {
    const int ky = SignedFrequency(r, rows);
    for (int kx = 0; kx < half_cols; ++kx) {
      const bool self_mirrored_column = kx == 0 || (cols % 2 == 0 && kx == cols / 2);
      if (self_mirrored_column && ky <= 0) continue;
      const std::size_t i = static_cast<std::size_t>(r) * half_cols + kx;
      if (radius[i] < options.min_cycles_per_frame) continue;
      const double p = power.half()[i];
      const double ring_background = background[ring_index[i]];
      if (p < options.min_significance * ring_background) continue;  // most bins: no division
      const double significance = p / ring_background;
      bool is_max = true;
      for (int dy = -1; dy <= 1 && is_max; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
          if ((dy != 0 || dx != 0) && power.at(ky + dy, kx + dx) >= p) {
            is_max = false;
            break;
          }
        }
      }
      if (is_max) raw.push_back(RawPeak{ky, kx, p, significance});
    }
  }
  std::sort(raw.begin(), raw.end(),
            [](const RawPeak& u, const RawPeak& v) { return u.power > v.power; });
  // Non-maximum suppression: the window's side lobes of a very strong peak are
  // themselves "significant" maxima within a few bins of it.
  constexpr int kSuppressionBins = 3;
  std::vector<RawPeak> kept;
  for (const RawPeak& candidate : raw) {
    bool suppressed = false;
    for (const RawPeak& stronger : kept) {
      for (int mirror : {1, -1}) {
        const int dky = candidate.ky - mirror * stronger.ky;
        const int dkx = candidate.kx - mirror * stronger.kx;
        if (std::abs(dky) <= kSuppressionBins && std::abs(dkx) <= kSuppressionBins) {
          suppressed = true;
        }
      }
    }
    if (!suppressed) kept.push_back(candidate);
    if (static_cast<int>(kept.size()) >= options.max_peaks) break;
  }
  if (kept.size() < 2) {
    estimate.message = "fewer than two significant spectral peaks";
    for (const RawPeak& p : kept) {
      estimate.peaks.push_back({static_cast<double>(p.kx) / cols,
                                static_cast<double>(p.ky) / rows, p.significance});
    }
    return estimate;
  }

  // Sub-pixel refinement: the log of a Hann-windowed line is close to a
  // parabola over the main lobe.
  std::vector<ReciprocalPeak> peaks;
  for (const RawPeak& p : kept) {
    const double c = SafeLog(p.power);
    const double dx = ParabolaOffset(SafeLog(power.at(p.ky, p.kx - 1)), c,
                                     SafeLog(power.at(p.ky, p.kx + 1)));
    const double dy = ParabolaOffset(SafeLog(power.at(p.ky - 1, p.kx)), c,
                                     SafeLog(power.at(p.ky + 1, p.kx)));
    ReciprocalPeak peak;
    peak.fx = (p.kx + dx) / cols;
    peak.fy = (p.ky + dy) / rows;
    peak.significance = p.significance;
    peaks.push_back(peak);
  }
  const std::size_t half_count = peaks.size();
  for (std::size_t i = 0; i < half_count; ++i) {
    ReciprocalPeak mirror = peaks[i];
    mirror.fx = -mirror.fx;
    mirror.fy = -mirror.fy;
    peaks.push_back(mirror);
  }

  // Distance in spectrum bins between a frequency and h g1 + k g2.
  auto bins = [&](Shift f) { return std::hypot(f.x * cols, f.y * rows); };
  auto index_all = [&](Shift g1, Shift g2, std::vector<ReciprocalPeak>* out) {
    const double det = Cross(g1, g2);
    int count = 0;
    for (ReciprocalPeak& peak : *out) {
      const Shift f{peak.fx, peak.fy};
      const int h = static_cast<int>(std::lround(Cross(f, g2) / det));
      const int k = static_cast<int>(std::lround(Cross(g1, f) / det));
      const Shift miss = f - (g1 * h + g2 * k);
      peak.indexed = (h != 0 || k != 0) && bins(miss) <= options.index_tolerance_bins;
      peak.h = peak.indexed ? h : 0;
      peak.k = peak.indexed ? k : 0;
      if (peak.indexed) ++count;
    }
    return count;
  };

  // Basis candidates: pairs among the shortest peaks (one per +- pair). The
  // basis indexing the most peaks wins; ties go to the smaller reciprocal cell.
  std::vector<std::size_t> order(half_count);
  for (std::size_t i = 0; i < half_count; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t u, std::size_t v) {
    return std::hypot(peaks[u].fx, peaks[u].fy) < std::hypot(peaks[v].fx, peaks[v].fy);
  });
  order.resize(std::min<std::size_t>(order.size(), 8));
  int best_count = -1;
  double best_area = 0;
  Shift best_g1, best_g2;
  for (std::size_t u = 0; u < order.size(); ++u) {
    for (std::size_t v = u + 1; v < order.size(); ++v) {
      Shift g1{peaks[order[u]].fx, peaks[order[u]].fy};
      Shift g2{peaks[order[v]].fx, peaks[order[v]].fy};
      const double area = std::abs(Cross(g1, g2));
      // Nearly collinear reflections (< ~11 degrees apart) are not a basis.
      if (area < 0.2 * g1.Norm() * g2.Norm()) continue;
      GaussReduce(&g1, &g2);
      std::vector<ReciprocalPeak> trial = peaks;
      const int count = index_all(g1, g2, &trial);
      if (count > best_count || (count == best_count && area < best_area)) {
        best_count = count;
        best_area = area;
        best_g1 = g1;
        best_g2 = g2;
      }
    }
  }
  if (best_count < 0) {
    estimate.message = "all significant peaks are collinear";
    estimate.peaks = peaks;
    return estimate;
  }
  int count = index_all(best_g1, best_g2, &peaks);
  estimate.peaks = peaks;
  estimate.indexed_peaks = count;
  if (count < options.min_indexed_peaks) {
    std::ostringstream message;
    message << "only " << count << " of " << peaks.size()
            << " peaks lie on a reciprocal lattice (need " << options.min_indexed_peaks << ")";
    estimate.message = message.str();
    return estimate;
  }

  // Least squares f = h g1 + k g2 over all indexed peaks: higher orders pin
  // the basis down far better than the first-order peaks alone.
  double shh = 0, shk = 0, skk = 0;
  Shift sfh, sfk;
  for (const ReciprocalPeak& peak : peaks) {
    if (!peak.indexed) continue;
    shh += peak.h * peak.h;
    shk += peak.h * peak.k;
    skk += peak.k * peak.k;
    sfh += Shift{peak.fx, peak.fy} * peak.h;
    sfk += Shift{peak.fx, peak.fy} * peak.k;
  }
  const double normal_det = shh * skk - shk * shk;
  if (normal_det > 0) {
    best_g1 = (sfh * skk - sfk * shk) * (1.0 / normal_det);
    best_g2 = (sfk * shh - sfh * shk) * (1.0 / normal_det);
  }
  GaussReduce(&best_g1, &best_g2);
  count = index_all(best_g1, best_g2, &peaks);
  estimate.peaks = peaks;
  estimate.indexed_peaks = count;

  // Real space: a_i . g_j = delta_ij, i.e. A = G^-T with G = [g1 g2].
  const double det = Cross(best_g1, best_g2);
  const Shift a{best_g2.y / det, -best_g2.x / det};
  const Shift b{-best_g1.y / det, best_g1.x / det};
  estimate.lattice = Lattice::Reduced(a, b);
  estimate.g1 = best_g1;
  estimate.g2 = best_g2;
  double sig1 = 0, sig2 = 0;
  for (const ReciprocalPeak& peak : peaks) {
    if (std::abs(peak.h) == 1 && peak.k == 0) sig1 = std::max(sig1, peak.significance);
    if (peak.h == 0 && std::abs(peak.k) == 1) sig2 = std::max(sig2, peak.significance);
  }
  estimate.significance = std::min(sig1, sig2);
  estimate.found = true;
  std::ostringstream message;
  message << count << " of " << peaks.size() << " peaks indexed; |a| "
          << estimate.lattice.a.Norm() << " px, |b| " << estimate.lattice.b.Norm() << " px";
  estimate.message = message.str();
  return estimate;
}

}  // namespace livealign
