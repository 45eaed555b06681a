#include "core/quality.hpp"

#include <algorithm>
#include <iomanip>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "core/fft.hpp"

namespace livealign {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Tukey window of n samples tapering `fraction` of n at each end (0: flat;
// 0.5: Hann).
std::vector<double> TukeyWindow(int n, double fraction) {
  std::vector<double> w(static_cast<std::size_t>(n), 1.0);
  const double taper = fraction * n;
  if (taper <= 0) return w;
  for (int i = 0; i < n; ++i) {
    const double d = std::min(i + 0.5, n - i - 0.5);  // distance to the nearest edge
    if (d < taper) w[static_cast<std::size_t>(i)] = 0.5 - 0.5 * std::cos(kPi * d / taper);
  }
  return w;
}

// (mean w^2)^2 / mean w^4 along one axis: the fraction of independent samples
// left after windowing.
double WindowEfficiency(const std::vector<double>& w) {
  double m2 = 0, m4 = 0;
  for (double v : w) m2 += v * v, m4 += v * v * v * v;
  m2 /= static_cast<double>(w.size());
  m4 /= static_cast<double>(w.size());
  return m4 > 0 ? m2 * m2 / m4 : 0;
}

// The image the caller wrote into fft->real(), windowed (and optionally
// mean-subtracted) in place, then Forward().
void WindowAndForward(const std::vector<double>& wy, const std::vector<double>& wx, bool subtract_mean,
                      RealFft2d* fft) {
  const int rows = fft->shape().rows, cols = fft->shape().cols;
  float* data = fft->real();
  double mean = 0;
  if (subtract_mean) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(rows) * cols; ++i) mean += data[i];
    mean /= static_cast<double>(fft->shape().Pixels());
  }
  for (int r = 0; r < rows; ++r) {
    float* row = data + static_cast<std::size_t>(r) * cols;
    for (int c = 0; c < cols; ++c)
      row[c] = static_cast<float>((row[c] - mean) * wy[static_cast<std::size_t>(r)] *
                                  wx[static_cast<std::size_t>(c)]);
  }
  fft->Forward();
}

// A writer of a view's pixels.
ImageWriter CopyOf(FrameView image) {
  return [image](float* out) {
    std::copy(image.data(), image.data() + image.shape().Pixels(), out);
    return true;
  };
}

// The ring of half-spectrum pixel (ky, kx), shared by the FRC and the
// information transfer; >= n_min / 2 + 1 beyond the Nyquist ring. sqrt and a
// truncation, not hypot and lround (the arguments are small and >= 0): per
// spectrum pixel, the libm calls were most of these loops.
int RingOf(double fy, int kx, int cols, int n_min) {
  const double fx = static_cast<double>(kx) / cols;
  return static_cast<int>(std::sqrt(fx * fx + fy * fy) * n_min + 0.5);
}

// Weight of half-spectrum column kx in full-plane sums: the columns with a
// conjugate partner stand for two Fourier pixels.
double ColumnWeight(int kx, int cols) {
  return (kx == 0 || (cols % 2 == 0 && kx == cols / 2)) ? 1.0 : 2.0;
}

std::string Format(double value) {
  std::ostringstream os;
  os << std::setprecision(3) << value;
  return os.str();
}

}  // namespace

// ---------------------------------------------------------------------------

double PeriodA(double fx, double fy, PixelSizeA pixel_size) {
  if (!(pixel_size.x > 0) || !(pixel_size.y > 0))
    throw std::invalid_argument("PeriodA: pixel sizes must be > 0");
  const double f = std::hypot(fx / pixel_size.x, fy / pixel_size.y);
  return f > 0 ? 1.0 / f : std::numeric_limits<double>::infinity();
}

RingResolutionA RingFrequencyToA(double f, PixelSizeA pixel_size) {
  RingResolutionA out;
  out.along_x_A = PeriodA(f, 0, pixel_size);
  out.along_y_A = PeriodA(0, f, pixel_size);
  out.mean_A = 0.5 * (out.along_x_A + out.along_y_A);
  return out;
}

// ---------------------------------------------------------------------------

bool FrcOptions::Check(std::string* error) const {
  std::string why;
  if (!(apodisation_fraction >= 0 && apodisation_fraction <= 0.5)) why += "apodisation_fraction must be in [0, 0.5]; ";
  if (!(significance_sigmas >= 0)) why += "significance_sigmas must be >= 0; ";
  if (min_consecutive_rings < 1) why += "min_consecutive_rings must be >= 1; ";
  if (error != nullptr) *error = why;
  return why.empty();
}

const char* FrcCrossingName(FrcCrossing crossing) {
  switch (crossing) {
    case FrcCrossing::kCrossed: return "crossed";
    case FrcCrossing::kNotReached: return "not reached";
    case FrcCrossing::kNoSignal: return "no signal";
  }
  return "?";
}

namespace {

// See FrcReport for the rule. Interpolates linearly on FRC - T between the
// last passing ring and the first failing ring of the run.
struct RingSums {
  std::vector<double> cross, power_a, power_b, count;
};

FrcResolution FindCrossing(const std::vector<FrcRing>& rings, const RingSums& sums, double threshold,
                           const FrcOptions& options, double window_efficiency) {
  FrcResolution result;
  const std::size_t run = static_cast<std::size_t>(options.min_consecutive_rings);
  auto passes = [&](std::size_t r) { return rings[r].frc >= threshold; };
  // Initial run of passing rings from ring 1.
  std::size_t r = 1;
  while (r < rings.size() && passes(r)) ++r;
  // Find the first run of `run` consecutive failing rings (or the end).
  while (r < rings.size()) {
    std::size_t end = r;
    while (end < rings.size() && !passes(end)) ++end;
    if (end - r >= run || end == rings.size()) break;
    r = end;
    while (r < rings.size() && passes(r)) ++r;
  }
  // r = first failing ring of the crossing run (rings.size(): never fell).
  // Passing rings before it: at least `run`, and their pooled correlation
  // significant, else a noise fluctuation at the thin low rings is no signal.
  std::size_t passing = 0;
  double cross = 0, pa = 0, pb = 0, n = 0;
  for (std::size_t k = 1; k < r; ++k) {
    if (passes(k)) ++passing;
    cross += sums.cross[k], pa += sums.power_a[k], pb += sums.power_b[k], n += sums.count[k];
  }
  if (passing < run || !(pa > 0 && pb > 0)) return result;  // kNoSignal
  const double pooled = cross / std::sqrt(pa * pb);
  const double n_eff = 0.5 * n * window_efficiency;
  if (!(pooled > options.significance_sigmas / std::sqrt(n_eff))) return result;
  if (r >= rings.size()) {
    result.status = FrcCrossing::kNotReached;
    result.frequency_cycles_per_px = rings.back().frequency_cycles_per_px;
    return result;
  }
  const double m0 = rings[r - 1].frc - threshold, m1 = rings[r].frc - threshold;
  const double t = (m0 - m1) > 0 ? std::clamp(m0 / (m0 - m1), 0.0, 1.0) : 0.0;
  result.status = FrcCrossing::kCrossed;
  result.frequency_cycles_per_px =
      rings[r - 1].frequency_cycles_per_px +
      t * (rings[r].frequency_cycles_per_px - rings[r - 1].frequency_cycles_per_px);
  return result;
}

}  // namespace

FrcReport FourierRingCorrelation(FrameView a, FrameView b, const FrcOptions& options) {
  if (a.shape() != b.shape()) throw std::invalid_argument("FourierRingCorrelation: shapes differ");
  return *FourierRingCorrelation(a.shape(), CopyOf(a), CopyOf(b), options);
}

std::optional<FrcReport> FourierRingCorrelation(Shape shape, const ImageWriter& a, const ImageWriter& b,
                                                const FrcOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("FrcOptions: " + error);
  if (shape.rows < 8 || shape.cols < 8)
    throw std::invalid_argument("FourierRingCorrelation: images smaller than 8 x 8");
  const int rows = shape.rows, cols = shape.cols;
  const std::vector<double> wy = TukeyWindow(rows, options.apodisation_fraction);
  const std::vector<double> wx = TukeyWindow(cols, options.apodisation_fraction);
  FrcReport report;
  report.window_efficiency = WindowEfficiency(wy) * WindowEfficiency(wx);

  // One transform for both images: a's half spectrum is copied out before b
  // is written into the transform's input.
  RealFft2d fft(shape);
  if (!a(fft.real())) return std::nullopt;
  WindowAndForward(wy, wx, options.subtract_mean, &fft);
  const std::vector<cfloat> spectrum_a(fft.spectrum(), fft.spectrum() + fft.spectrum_size());
  if (!b(fft.real())) return std::nullopt;
  WindowAndForward(wy, wx, options.subtract_mean, &fft);

  const int n_min = std::min(rows, cols);
  const int num_rings = n_min / 2 + 1;
  RingSums sums;
  sums.cross.assign(num_rings, 0);
  sums.power_a.assign(num_rings, 0);
  sums.power_b.assign(num_rings, 0);
  sums.count.assign(num_rings, 0);
  std::vector<double>& cross = sums.cross;
  std::vector<double>& power_a = sums.power_a;
  std::vector<double>& power_b = sums.power_b;
  std::vector<double>& count = sums.count;
  const int spec_cols = fft.spectrum_cols();
  const cfloat* sa = spectrum_a.data();
  const cfloat* sb = fft.spectrum();
  for (int ky = 0; ky < rows; ++ky) {
    const double fy = static_cast<double>(SignedFrequency(ky, rows)) / rows;
    for (int kx = 0; kx < spec_cols; ++kx) {
      const int ring = RingOf(fy, kx, cols, n_min);
      if (ring >= num_rings) continue;  // corners beyond the Nyquist ring
      const double w = ColumnWeight(kx, cols);
      const std::complex<double> va = sa[static_cast<std::size_t>(ky) * spec_cols + kx];
      const std::complex<double> vb = sb[static_cast<std::size_t>(ky) * spec_cols + kx];
      cross[ring] += w * (va * std::conj(vb)).real();
      power_a[ring] += w * std::norm(va);
      power_b[ring] += w * std::norm(vb);
      count[ring] += w;
    }
  }
  double total_cross = 0, total_a = 0, total_b = 0;
  report.rings.resize(num_rings);
  for (int r = 0; r < num_rings; ++r) {
    FrcRing& ring = report.rings[r];
    ring.frequency_cycles_per_px = static_cast<double>(r) / n_min;
    ring.num_samples = static_cast<std::int64_t>(count[r]);
    const double denom = std::sqrt(power_a[r] * power_b[r]);
    ring.frc = denom > 0 ? cross[r] / denom : 0.0;
    const double n_eff = 0.5 * count[r] * report.window_efficiency;
    ring.noise_threshold = n_eff > 0 ? options.significance_sigmas / std::sqrt(n_eff)
                                     : std::numeric_limits<double>::infinity();
    const double clamped = std::clamp(ring.frc, 0.0, 1.0 - 1e-9);
    ring.ssnr = 2 * clamped / (1 - clamped);
    if (r > 0) total_cross += cross[r], total_a += power_a[r], total_b += power_b[r];
  }
  const double rho_denom = std::sqrt(total_a * total_b);
  const double rho = std::clamp(rho_denom > 0 ? total_cross / rho_denom : 0.0, 0.0, 1.0 - 1e-9);
  report.image_snr = 2 * rho / (1 - rho);
  report.at_one_seventh = FindCrossing(report.rings, sums, 1.0 / 7.0, options, report.window_efficiency);
  report.at_half = FindCrossing(report.rings, sums, 0.5, options, report.window_efficiency);
  return report;
}

// ---------------------------------------------------------------------------

bool InformationTransferOptions::Check(std::string* error) const {
  std::string why;
  if (!(false_alarms_per_image > 0)) why += "false_alarms_per_image must be > 0; ";
  if (!(min_frequency_cycles_per_px >= 0 && min_frequency_cycles_per_px < 0.5))
    why += "min_frequency_cycles_per_px must be in [0, 0.5); ";
  if (error != nullptr) *error = why;
  return why.empty();
}

InformationTransferReport InformationTransfer(FrameView image, const InformationTransferOptions& options) {
  return InformationTransfer(image.shape(), CopyOf(image), options);
}

InformationTransferReport InformationTransfer(Shape shape, const ImageWriter& image,
                                              const InformationTransferOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("InformationTransferOptions: " + error);
  if (shape.rows < 16 || shape.cols < 16)
    throw std::invalid_argument("InformationTransfer: image smaller than 16 x 16");
  const int rows = shape.rows, cols = shape.cols;
  const double fraction = options.hann_window ? 0.5 : 0.0;
  const int spec_cols = cols / 2 + 1;
  std::vector<float> power;
  {
    // The transform (8 bytes a pixel) is released before the rings are
    // grouped: the peak holds the power and one of the two.
    RealFft2d fft(shape);
    if (!image(fft.real())) return {};
    WindowAndForward(TukeyWindow(rows, fraction), TukeyWindow(cols, fraction), true, &fft);
    power.resize(fft.spectrum_size());
    for (std::size_t k = 0; k < power.size(); ++k) power[k] = std::norm(fft.spectrum()[k]);
  }

  // Per-ring background: median power / ln 2 (exponential noise power has
  // median = mean ln 2; the median ignores the few peak pixels). Each pixel's
  // ring is computed once, into a 2-byte table built after the transform is
  // gone (so it adds nothing to the peak), and the rings' values are grouped
  // in one array (counted, then filled), not one growing vector per ring,
  // whose spare capacity could double the group.
  const int n_min = std::min(rows, cols);
  const int num_rings = n_min / 2 + 1;
  constexpr std::uint16_t kBeyondNyquist = std::numeric_limits<std::uint16_t>::max();
  if (num_rings >= kBeyondNyquist) throw std::invalid_argument("InformationTransfer: image too large");
  std::vector<std::uint16_t> ring_of(power.size());
  std::vector<std::size_t> ring_start(static_cast<std::size_t>(num_rings) + 1, 0);
  for (int ky = 0; ky < rows; ++ky) {
    const double fy = static_cast<double>(SignedFrequency(ky, rows)) / rows;
    for (int kx = 0; kx < spec_cols; ++kx) {
      const int ring = RingOf(fy, kx, cols, n_min);
      const bool inside = ring < num_rings;
      ring_of[static_cast<std::size_t>(ky) * spec_cols + kx] =
          inside ? static_cast<std::uint16_t>(ring) : kBeyondNyquist;
      if (inside) ++ring_start[static_cast<std::size_t>(ring) + 1];
    }
  }
  for (int r = 0; r < num_rings; ++r) ring_start[r + 1] += ring_start[r];
  std::vector<float> ring_values(ring_start.back());
  {
    std::vector<std::size_t> next(ring_start.begin(), ring_start.end() - 1);
    for (std::size_t k = 0; k < power.size(); ++k)
      if (ring_of[k] != kBeyondNyquist) ring_values[next[ring_of[k]]++] = power[k];
  }
  std::vector<double> background(num_rings, 0);
  std::int64_t tested = 0;
  const int min_ring = static_cast<int>(std::ceil(options.min_frequency_cycles_per_px * n_min));
  for (int r = std::max(1, min_ring); r < num_rings; ++r) {
    const auto first = ring_values.begin() + static_cast<std::ptrdiff_t>(ring_start[r]);
    const auto last = ring_values.begin() + static_cast<std::ptrdiff_t>(ring_start[r + 1]);
    const std::size_t size = static_cast<std::size_t>(last - first);
    if (size < 16) continue;  // too few samples for a median
    std::nth_element(first, first + static_cast<std::ptrdiff_t>(size / 2), last);
    background[r] = first[static_cast<std::ptrdiff_t>(size / 2)] / std::log(2.0);
    tested += static_cast<std::int64_t>(size);
  }
  ring_values = {};
  InformationTransferReport report;
  report.threshold = std::log(std::max<double>(1.0, tested) / options.false_alarms_per_image);

  for (int ky = 0; ky < rows; ++ky) {
    for (int kx = 0; kx < spec_cols; ++kx) {
      const std::size_t k = static_cast<std::size_t>(ky) * spec_cols + kx;
      const int ring = ring_of[k];
      if (ring == kBeyondNyquist || !(background[ring] > 0)) continue;
      const double ratio = power[k] / background[ring];
      if (ratio <= report.threshold) continue;
      // Local maximum over the 8 neighbours inside the half-plane (rows wrap).
      bool is_max = true;
      for (int dy = -1; dy <= 1 && is_max; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          if (dx == 0 && dy == 0) continue;
          const int nx = kx + dx;
          if (nx < 0 || nx >= spec_cols) continue;
          const int ny = (ky + dy + rows) % rows;
          if (power[static_cast<std::size_t>(ny) * spec_cols + nx] > power[k]) {
            is_max = false;
            break;
          }
        }
      if (!is_max) continue;
      SpectralPeak peak;
      peak.fx_cycles_per_px = static_cast<double>(kx) / cols;
      peak.fy_cycles_per_px = static_cast<double>(SignedFrequency(ky, rows)) / rows;
      peak.frequency_cycles_per_px = std::hypot(peak.fx_cycles_per_px, peak.fy_cycles_per_px);
      peak.power_over_background = ratio;
      report.peaks.push_back(peak);
      if (!report.found || peak.frequency_cycles_per_px > report.frequency_cycles_per_px) {
        report.found = true;
        report.frequency_cycles_per_px = peak.frequency_cycles_per_px;
        report.highest = peak;
      }
    }
  }
  std::sort(report.peaks.begin(), report.peaks.end(), [](const SpectralPeak& x, const SpectralPeak& y) {
    return x.power_over_background > y.power_over_background;
  });
  return report;
}

// ---------------------------------------------------------------------------

bool DriftOptions::Check(std::string* error) const {
  std::string why;
  if (window_frames < 2) why += "window_frames must be >= 2; ";
  if (!(settled_speed_px_per_frame > 0)) why += "settled_speed_px_per_frame must be > 0; ";
  if (!(settled_speed_px_per_s >= 0)) why += "settled_speed_px_per_s must be >= 0; ";
  if (settle_window_frames < 1) why += "settle_window_frames must be >= 1; ";
  if (!(trend_tolerance >= 0)) why += "trend_tolerance must be >= 0; ";
  if (error != nullptr) *error = why;
  return why.empty();
}

const char* DriftTrendName(DriftTrend trend) {
  switch (trend) {
    case DriftTrend::kUnknown: return "unknown";
    case DriftTrend::kSlowing: return "slowing";
    case DriftTrend::kSteady: return "steady";
    case DriftTrend::kSpeeding: return "speeding";
  }
  return "?";
}

namespace {

// Least-squares slope of shifts[first, first + n) against t (index or time).
// Returns false when t does not vary.
bool FitSlope(const std::vector<Shift>& shifts, const std::vector<double>& t, int first, int n,
              Shift* slope) {
  double mt = 0, mx = 0, my = 0;
  for (int i = first; i < first + n; ++i) mt += t[i], mx += shifts[i].x, my += shifts[i].y;
  mt /= n, mx /= n, my /= n;
  double stt = 0, stx = 0, sty = 0;
  for (int i = first; i < first + n; ++i) {
    const double dt = t[i] - mt;
    stt += dt * dt, stx += dt * (shifts[i].x - mx), sty += dt * (shifts[i].y - my);
  }
  if (!(stt > 0)) return false;
  *slope = {stx / stt, sty / stt};
  return true;
}

bool IncreasingFinite(const std::vector<double>& t, int first, int n) {
  for (int i = first; i < first + n; ++i) {
    if (!std::isfinite(t[i])) return false;
    if (i > first && !(t[i] > t[i - 1])) return false;
  }
  return true;
}

// Speed (in the units the settled threshold uses) of the window ending at
// `last`, or NaN when no window fits.
double WindowSpeed(const std::vector<Shift>& shifts, const std::vector<double>& index,
                   const std::vector<double>& timestamps, const DriftOptions& options, int last,
                   bool* per_second) {
  const int w = options.window_frames;
  const int first = last - w + 1;
  *per_second = false;
  if (first < 0) return std::nan("");
  Shift slope;
  if (options.settled_speed_px_per_s > 0 && !timestamps.empty() && IncreasingFinite(timestamps, first, w) &&
      FitSlope(shifts, timestamps, first, w, &slope)) {
    *per_second = true;
    return slope.Norm();
  }
  FitSlope(shifts, index, first, w, &slope);
  return slope.Norm();
}

}  // namespace

DriftStatus EvaluateDrift(const std::vector<Shift>& shifts, const std::vector<double>& timestamps_s,
                          const DriftOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("DriftOptions: " + error);
  if (!timestamps_s.empty() && timestamps_s.size() != shifts.size())
    throw std::invalid_argument("EvaluateDrift: timestamps_s must be empty or one per shift");
  DriftStatus status;
  const int n = static_cast<int>(shifts.size());
  const int w = options.window_frames;
  status.num_frames = n;
  const double nan = std::nan("");
  status.velocity_px_per_s = {nan, nan};
  if (n < w) return status;
  std::vector<double> index(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) index[i] = i;

  status.rate_valid = true;
  FitSlope(shifts, index, n - w, w, &status.velocity_px_per_frame);
  status.speed_px_per_frame = status.velocity_px_per_frame.Norm();
  if (!timestamps_s.empty() && IncreasingFinite(timestamps_s, n - w, w) &&
      FitSlope(shifts, timestamps_s, n - w, w, &status.velocity_px_per_s))
    status.speed_px_per_s = status.velocity_px_per_s.Norm();

  if (n >= 2 * w) {
    Shift previous;
    FitSlope(shifts, index, n - 2 * w, w, &previous);
    status.previous_speed_px_per_frame = previous.Norm();
    const double now = status.speed_px_per_frame, before = previous.Norm();
    const double floor = 0.5 * options.settled_speed_px_per_frame;  // both slow: steady
    if (now < floor && before < floor) status.trend = DriftTrend::kSteady;
    else if (now < before * (1 - options.trend_tolerance)) status.trend = DriftTrend::kSlowing;
    else if (now > before * (1 + options.trend_tolerance)) status.trend = DriftTrend::kSpeeding;
    else status.trend = DriftTrend::kSteady;
  }

  // Settled: each of the last settle_window_frames windows is slow.
  status.settled = n >= w + options.settle_window_frames - 1;
  for (int k = 0; k < options.settle_window_frames && status.settled; ++k) {
    bool per_second = false;
    const double speed = WindowSpeed(shifts, index, timestamps_s, options, n - 1 - k, &per_second);
    const double limit = per_second ? options.settled_speed_px_per_s : options.settled_speed_px_per_frame;
    if (!(speed < limit)) status.settled = false;
  }
  return status;
}

DriftSettledTracker::DriftSettledTracker(const DriftOptions& options) : options_(options) {
  std::string error;
  if (!options_.Check(&error)) throw std::invalid_argument("DriftOptions: " + error);
}

void DriftSettledTracker::Reset() {
  shifts_.clear();
  timestamps_s_.clear();
  settled_at_frame_ = settled_since_frame_ = -1;
}

DriftStatus DriftSettledTracker::Add(Shift shift, double timestamp_s) {
  shifts_.push_back(shift);
  timestamps_s_.push_back(timestamp_s);
  const DriftStatus status = EvaluateDrift(shifts_, timestamps_s_, options_);
  const int last = static_cast<int>(shifts_.size()) - 1;
  if (!status.settled) {
    settled_at_frame_ = settled_since_frame_ = -1;
  } else if (settled_at_frame_ < 0) {
    settled_at_frame_ = last;
    // The earliest slow window started window_frames - 1 frames before its
    // end, which is settle_window_frames - 1 frames before `last`.
    settled_since_frame_ = std::max(0, last - (options_.settle_window_frames - 1) - (options_.window_frames - 1));
  }
  return status;
}

// ---------------------------------------------------------------------------

bool StopRule::Options::Check(std::string* error) const {
  std::string why;
  if (!std::isfinite(target_resolution_A)) why += "target_resolution_A must be finite; ";
  if (!std::isfinite(target_snr)) why += "target_snr must be finite; ";
  if (error != nullptr) *error = why;
  return why.empty();
}

StopRule::StopRule(const Options& options) : options_(options) {
  std::string error;
  if (!options_.Check(&error)) throw std::invalid_argument("StopRule::Options: " + error);
}

StopDecision StopRule::Evaluate(const StopInputs& in) const {
  StopDecision decision;
  const bool use_resolution = options_.target_resolution_A > 0;
  const bool use_snr = options_.target_snr > 0;
  const std::string after = " after " + std::to_string(in.num_frames) + " frames";
  std::vector<std::string> met, unmet;
  if (use_resolution) {
    const std::string target = "target " + Format(options_.target_resolution_A) + " Å";
    if (!std::isfinite(in.resolution_A)) unmet.push_back("resolution not measurable yet (" + target + ")");
    else if (in.resolution_A <= options_.target_resolution_A)
      met.push_back("resolution " + Format(in.resolution_A) + " Å reached " + target);
    else unmet.push_back("resolution " + Format(in.resolution_A) + " Å, " + target);
  }
  if (use_snr) {
    const std::string target = "target " + Format(options_.target_snr);
    if (!std::isfinite(in.snr)) unmet.push_back("SNR not measurable yet (" + target + ")");
    else if (in.snr >= options_.target_snr) met.push_back("SNR " + Format(in.snr) + " reached " + target);
    else unmet.push_back("SNR " + Format(in.snr) + ", " + target);
  }
  if ((use_resolution || use_snr) && options_.require_drift_settled) {
    if (in.drift_settled) met.push_back("drift settled");
    else unmet.push_back("drift not settled");
  }
  auto join = [](const std::vector<std::string>& parts) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
    return out;
  };
  if (!use_resolution && !use_snr) {
    decision.reason = "no quality target set";
  } else if (unmet.empty()) {
    decision.good = true;
    decision.reason = join(met) + after;
  } else {
    decision.reason = join(unmet) + after;
  }
  decision.stop = decision.good;
  if (!decision.good && options_.max_frames > 0 && in.num_frames >= options_.max_frames) {
    decision.stop = true;
    decision.reason = "maximum of " + std::to_string(options_.max_frames) + " frames reached; " + decision.reason;
  }
  return decision;
}

}  // namespace livealign
