#include "core/simulator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>

namespace livealign {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Columns and blobs are rendered out to this many standard deviations, where
// a Gaussian has fallen to 3e-4 of its peak: far below one count at any dose
// we simulate, and it keeps the render cost proportional to the column count.
// (The Gaussian is lowered by that 3e-4 so it reaches 0 continuously.)
constexpr double kRenderSigmas = 4.0;

// SplitMix64 finaliser: a counter-based hash, so every random quantity is a
// pure function of (seed, purpose, indices) and frames can be made in any order.
std::uint64_t Mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
std::uint64_t Hash(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0,
                   std::uint64_t c = 0, std::uint64_t d = 0) {
  std::uint64_t h = Mix(seed ^ 0x5851F42D4C957F2Dull);
  h = Mix(h ^ a);
  h = Mix(h ^ b);
  h = Mix(h ^ c);
  return Mix(h ^ d);
}
// Uniform in (0, 1): never exactly 0 (safe for log).
double Uniform(std::uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
double Gaussian(std::uint64_t bits_a, std::uint64_t bits_b) {
  return std::sqrt(-2.0 * std::log(Uniform(bits_a))) * std::cos(2 * kPi * Uniform(bits_b));
}

// Purposes for Hash(), so different random quantities never share a stream.
enum Purpose : std::uint64_t {
  kOrigin = 1,
  kVacancy = 2,
  kBlob = 3,
  kAcceleration = 4,
  kNoise = 5,
};

// Small fast generator (xorshift64*) for the per-pixel Poisson draws of one frame.
class FrameRng {
 public:
  explicit FrameRng(std::uint64_t seed) : state_(seed | 1) {}
  double NextUniform() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return Uniform(state_ * 0x2545F4914F6CDD1Dull);
  }

 private:
  std::uint64_t state_;
};

// Below this mean, Poisson samples come from inversion (expected lambda + 1
// steps and one exp); above it from std::poisson_distribution.
constexpr double kInversionMaxLambda = 12.0;

}  // namespace

Shift SimulatorOptions::DefaultDriftAt(double px_per_frame) {
  if (!(px_per_frame >= 0)) throw std::invalid_argument("drift speed must be >= 0 px per frame");
  const Shift direction = SimulatorOptions{}.initial_velocity_px_per_frame;
  return direction * (px_per_frame / direction.Norm());
}

bool SimulatorOptions::Check(std::string* error) const {
  std::ostringstream why;
  if (shape.rows < 8 || shape.cols < 8) why << "shape must be at least 8 x 8; ";
  if (!(lattice_spacing_px >= 2.0)) why << "lattice_spacing_px must be >= 2; ";
  if (!std::isfinite(rotation_deg)) why << "rotation_deg must be finite; ";
  if (!(column_sigma_px > 0.2)) why << "column_sigma_px must be > 0.2; ";
  if (!(a_site_intensity >= 0) || !(b_site_intensity >= 0) || !(o_site_intensity >= 0))
    why << "site intensities must be >= 0; ";
  if (!(vacancy_fraction >= 0 && vacancy_fraction < 1)) why << "vacancy_fraction must be in [0, 1); ";
  if (num_blobs < 0) why << "num_blobs must be >= 0; ";
  if (!(blob_sigma_min_px > 0 && blob_sigma_max_px >= blob_sigma_min_px))
    why << "need 0 < blob_sigma_min_px <= blob_sigma_max_px; ";
  if (!std::isfinite(blob_amplitude)) why << "blob_amplitude must be finite; ";
  if (!std::isfinite(thickness_gradient) || !std::isfinite(thickness_gradient_angle_deg))
    why << "thickness gradient must be finite; ";
  if (!(background >= 0)) why << "background must be >= 0; ";
  if (!std::isfinite(initial_velocity_px_per_frame.x) ||
      !std::isfinite(initial_velocity_px_per_frame.y))
    why << "initial_velocity_px_per_frame must be finite; ";
  if (!(random_acceleration_px >= 0)) why << "random_acceleration_px must be >= 0; ";
  if (!(velocity_relaxation >= 0 && velocity_relaxation <= 1))
    why << "velocity_relaxation must be in [0, 1]; ";
  for (const auto& jump : jumps) {
    if (jump.frame < 1) why << "a stage jump must be at frame >= 1 (s_0 is (0, 0)); ";
    if (!std::isfinite(jump.jump.x) || !std::isfinite(jump.jump.y)) why << "jump must be finite; ";
  }
  if (drift_stops_at_frame < -1) why << "drift_stops_at_frame must be >= -1; ";
  if (!(dose_counts_per_px > 0) || !std::isfinite(dose_counts_per_px))
    why << "dose_counts_per_px must be > 0; ";
  if (!(frame_time_s >= 0) || !std::isfinite(start_time_s)) why << "bad frame timing; ";
  const std::string text = why.str();
  if (error != nullptr) *error = text;
  return text.empty();
}

Simulator::Simulator(const SimulatorOptions& options, std::uint64_t seed)
    : options_(options), seed_(seed) {
  std::string error;
  if (!options_.Check(&error)) throw std::invalid_argument("SimulatorOptions: " + error);
  if (options_.perfect_lattice) {
    options_.vacancy_fraction = 0;
    options_.num_blobs = 0;
    options_.thickness_gradient = 0;
  }

  const double d = options_.lattice_spacing_px;
  const double angle = options_.rotation_deg * kPi / 180.0;
  const double c = std::cos(angle), s = std::sin(angle);
  auto rotate = [&](double x, double y) { return Shift{c * x - s * y, s * x + c * y}; };
  switch (options_.lattice) {
    case SpecimenLattice::kSquare:
      lattice_a_ = rotate(d, 0);
      lattice_b_ = rotate(0, d);
      basis_ = {{0, 0, options_.a_site_intensity, 0}};
      break;
    case SpecimenLattice::kHexagonal:
      lattice_a_ = rotate(d, 0);
      lattice_b_ = rotate(0.5 * d, 0.5 * std::sqrt(3.0) * d);
      basis_ = {{0, 0, options_.a_site_intensity, 0}};
      break;
    case SpecimenLattice::kPerovskite:
      lattice_a_ = rotate(d, 0);
      lattice_b_ = rotate(0, d);
      basis_ = {{0, 0, options_.a_site_intensity, 0}, {0.5, 0.5, options_.b_site_intensity, 1}};
      if (options_.o_site_intensity > 0) {
        basis_.push_back({0.5, 0, options_.o_site_intensity, 2});
        basis_.push_back({0, 0.5, options_.o_site_intensity, 3});
      }
      break;
  }
  // Random sub-cell origin, so the lattice does not sit on the pixel grid.
  const double ou = Uniform(Hash(seed_, kOrigin, 0)), ov = Uniform(Hash(seed_, kOrigin, 1));
  origin_ = lattice_a_ * ou + lattice_b_ * ov;

  const double rows = options_.shape.rows, cols = options_.shape.cols;
  for (int k = 0; k < options_.num_blobs; ++k) {
    Blob blob;
    blob.x = (-0.25 + 1.5 * Uniform(Hash(seed_, kBlob, k, 0))) * cols;
    blob.y = (-0.25 + 1.5 * Uniform(Hash(seed_, kBlob, k, 1))) * rows;
    blob.sigma = options_.blob_sigma_min_px +
                 (options_.blob_sigma_max_px - options_.blob_sigma_min_px) *
                     Uniform(Hash(seed_, kBlob, k, 2));
    blob.amplitude = options_.blob_amplitude * (0.5 + Uniform(Hash(seed_, kBlob, k, 3)));
    blobs_.push_back(blob);
  }

  drift_.push_back(Shift{0, 0});
  velocity_ = options_.initial_velocity_px_per_frame;

  std::vector<float> frame0(static_cast<std::size_t>(options_.shape.Pixels()));
  Render(Shift{0, 0}, frame0.data());
  double sum = 0;
  for (float v : frame0) sum += v;
  const double mean = sum / static_cast<double>(frame0.size());
  if (!(mean > 0)) throw std::invalid_argument("Simulator: the specimen is completely dark");
  counts_per_intensity_ = options_.dose_counts_per_px / mean;
}

void Simulator::ExtendDrift(int index) const {
  const Shift v0 = options_.initial_velocity_px_per_frame;
  while (static_cast<int>(drift_.size()) <= index) {
    const int i = static_cast<int>(drift_.size()) - 1;  // step i -> i + 1
    if (options_.drift_stops_at_frame >= 0 && i >= options_.drift_stops_at_frame) {
      drift_.push_back(drift_.back());
      continue;
    }
    const double sa = options_.random_acceleration_px;
    Shift accel{0, 0};
    if (sa > 0) {
      accel.x = sa * Gaussian(Hash(seed_, kAcceleration, i, 0), Hash(seed_, kAcceleration, i, 1));
      accel.y = sa * Gaussian(Hash(seed_, kAcceleration, i, 2), Hash(seed_, kAcceleration, i, 3));
    }
    if (i > 0) velocity_ = velocity_ + (v0 - velocity_) * options_.velocity_relaxation + accel;
    else velocity_ = v0 + accel;
    drift_.push_back(drift_.back() + velocity_);
  }
}

Shift Simulator::TrueShift(int index) const {
  if (index < 0) throw std::invalid_argument("Simulator::TrueShift: negative index");
  ExtendDrift(index);
  Shift shift = drift_[static_cast<std::size_t>(index)];
  for (const auto& jump : options_.jumps)
    if (index >= jump.frame) shift += jump.jump;
  return shift;
}

double Simulator::Timestamp(int index) const {
  return options_.start_time_s + options_.frame_time_s * index;
}

void Simulator::Render(Shift shift, float* out) const {
  const int rows = options_.shape.rows, cols = options_.shape.cols;
  std::fill(out, out + static_cast<std::size_t>(rows) * cols,
            static_cast<float>(options_.background));

  // Separable Gaussian stamp centred at (cx, cy) in frame pixels.
  std::vector<float> ex, ey;
  auto stamp = [&](double cx, double cy, double sigma, double amplitude) {
    const double reach = kRenderSigmas * sigma;
    const int c0 = std::max(0, static_cast<int>(std::ceil(cx - reach)));
    const int c1 = std::min(cols - 1, static_cast<int>(std::floor(cx + reach)));
    const int r0 = std::max(0, static_cast<int>(std::ceil(cy - reach)));
    const int r1 = std::min(rows - 1, static_cast<int>(std::floor(cy + reach)));
    if (c0 > c1 || r0 > r1) return;
    const double inv = -0.5 / (sigma * sigma);
    // Each factor is lowered by its value at the reach, so the stamp falls
    // continuously to 0 there and the specimen stays a continuous function.
    const double floor = std::exp(inv * reach * reach);
    auto factor = [&](double d) { return std::max(0.0, std::exp(inv * d * d) - floor); };
    ex.resize(static_cast<std::size_t>(c1 - c0 + 1));
    ey.resize(static_cast<std::size_t>(r1 - r0 + 1));
    for (int c = c0; c <= c1; ++c) ex[c - c0] = static_cast<float>(factor(c - cx));
    for (int r = r0; r <= r1; ++r) ey[r - r0] = static_cast<float>(amplitude * factor(r - cy));
    for (int r = r0; r <= r1; ++r) {
      float* row = out + static_cast<std::size_t>(r) * cols;
      const float wy = ey[r - r0];
      for (int c = c0; c <= c1; ++c) row[c] += wy * ex[c - c0];
    }
  };

  for (const auto& blob : blobs_) stamp(blob.x + shift.x, blob.y + shift.y, blob.sigma, blob.amplitude);

  // Lattice columns: specimen position origin + (n + u) a + (m + v) b appears
  // at that position + shift. Find the (n, m) range covering the frame plus the
  // render reach by mapping the frame corners into lattice coordinates.
  const double sigma = options_.column_sigma_px;
  const double reach = kRenderSigmas * sigma + 1;
  const double det = lattice_a_.x * lattice_b_.y - lattice_a_.y * lattice_b_.x;
  double n_min = 1e300, n_max = -1e300, m_min = 1e300, m_max = -1e300;
  for (double x : {-reach, cols - 1 + reach}) {
    for (double y : {-reach, rows - 1 + reach}) {
      const double px = x - shift.x - origin_.x, py = y - shift.y - origin_.y;
      const double n = (px * lattice_b_.y - py * lattice_b_.x) / det;
      const double m = (py * lattice_a_.x - px * lattice_a_.y) / det;
      n_min = std::min(n_min, n), n_max = std::max(n_max, n);
      m_min = std::min(m_min, m), m_max = std::max(m_max, m);
    }
  }
  const double g_angle = options_.thickness_gradient_angle_deg * kPi / 180.0;
  const double gx = std::cos(g_angle), gy = std::sin(g_angle);
  const double g_centre = 0.5 * (cols - 1) * gx + 0.5 * (rows - 1) * gy;
  const double g_per_px = options_.thickness_gradient / cols;
  const std::uint64_t vacancy_cut =
      static_cast<std::uint64_t>(options_.vacancy_fraction * 18446744073709551615.0);
  for (long n = static_cast<long>(std::floor(n_min)) - 1; n <= static_cast<long>(std::ceil(n_max)); ++n) {
    for (long m = static_cast<long>(std::floor(m_min)) - 1; m <= static_cast<long>(std::ceil(m_max)); ++m) {
      for (const auto& site : basis_) {
        if (site.intensity <= 0) continue;
        // Specimen coordinates (frame-0 pixels) of this column.
        const double sx = origin_.x + (n + site.u) * lattice_a_.x + (m + site.v) * lattice_b_.x;
        const double sy = origin_.y + (n + site.u) * lattice_a_.y + (m + site.v) * lattice_b_.y;
        const double cx = sx + shift.x, cy = sy + shift.y;
        if (cx < -reach || cx > cols - 1 + reach || cy < -reach || cy > rows - 1 + reach) continue;
        if (vacancy_cut > 0 &&
            Hash(seed_, kVacancy, static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(m),
                 static_cast<std::uint64_t>(site.site)) < vacancy_cut)
          continue;
        double amplitude = site.intensity;
        if (options_.thickness_gradient != 0)
          amplitude *= std::max(0.0, 1.0 + g_per_px * (sx * gx + sy * gy - g_centre));
        if (amplitude > 0) stamp(cx, cy, sigma, amplitude);
      }
    }
  }
}

Frame Simulator::NoiseFreeFrame(int index) const {
  const Shift shift = TrueShift(index);  // throws on a negative index
  FrameHeader header;
  header.index = index;
  header.timestamp_s = Timestamp(index);
  header.shape = options_.shape;
  Frame frame(options_.shape, header);
  Render(shift - field_of_view_offset_px_, frame.data());
  const float scale = static_cast<float>(counts_per_intensity_);
  float* p = frame.data();
  for (std::int64_t k = 0; k < options_.shape.Pixels(); ++k) p[k] *= scale;
  return frame;
}

Frame Simulator::NoisyFrame(int index) const {
  Frame frame = NoiseFreeFrame(index);
  if (!options_.poisson_noise) return frame;
  const std::uint64_t frame_seed = Hash(seed_, kNoise, static_cast<std::uint64_t>(index));
  FrameRng rng(frame_seed);
  std::mt19937_64 big_rng(frame_seed);  // only for the rare bright pixels
  float* p = frame.data();
  for (std::int64_t k = 0; k < options_.shape.Pixels(); ++k) {
    const double lambda = p[k];
    if (!(lambda > 0)) {
      p[k] = 0;
      continue;
    }
    if (lambda < kInversionMaxLambda) {
      // Inversion by sequential search of the cumulative distribution.
      const double u = rng.NextUniform();
      double term = std::exp(-lambda), cumulative = term;
      int count = 0;
      while (u > cumulative && count < 1000) {
        ++count;
        term *= lambda / count;
        cumulative += term;
      }
      p[k] = static_cast<float>(count);
    } else {
      std::poisson_distribution<long> poisson(lambda);
      p[k] = static_cast<float>(poisson(big_rng));
    }
  }
  return frame;
}

Frame Simulator::NextFrame() { return NoisyFrame(next_index_++); }

SimulatedSeries Simulate(const SimulatorOptions& options, int num_frames, std::uint64_t seed,
                         bool keep_noise_free) {
  if (num_frames < 0) throw std::invalid_argument("Simulate: num_frames < 0");
  Simulator microscope(options, seed);
  SimulatedSeries series;
  series.lattice_a_px = microscope.lattice_a_px();
  series.lattice_b_px = microscope.lattice_b_px();
  for (int i = 0; i < num_frames; ++i) {
    series.frames.push_back(microscope.NextFrame());
    if (keep_noise_free) series.noise_free_frames.push_back(microscope.NoiseFreeFrame(i));
    series.true_shifts.push_back(microscope.TrueShift(i));
    series.timestamps_s.push_back(microscope.Timestamp(i));
  }
  return series;
}

ShiftPrecisionBound CramerRaoBound(FrameView lambda) {
  const int rows = lambda.rows(), cols = lambda.cols();
  if (rows < 5 || cols < 5) throw std::invalid_argument("CramerRaoBound: frame smaller than 5 x 5");
  // Fourth-order central difference: f' = (f[-2] - 8 f[-1] + 8 f[1] - f[2]) / 12,
  // accurate to O(h^4): for a Gaussian column of sigma 1.8 px the error of a
  // plain two-point difference (~ h^2 f'''/6) would be ~10 %.
  double info_x = 0, info_y = 0;
  for (int r = 2; r < rows - 2; ++r) {
    const float* m2 = lambda.row(r - 2);
    const float* m1 = lambda.row(r - 1);
    const float* r0 = lambda.row(r);
    const float* p1 = lambda.row(r + 1);
    const float* p2 = lambda.row(r + 2);
    for (int c = 2; c < cols - 2; ++c) {
      const double l = r0[c];
      if (!(l > 0)) continue;
      const double dx = (r0[c - 2] - 8.0 * r0[c - 1] + 8.0 * r0[c + 1] - r0[c + 2]) / 12.0;
      const double dy = (m2[c] - 8.0 * m1[c] + 8.0 * p1[c] - p2[c]) / 12.0;
      info_x += dx * dx / l;
      info_y += dy * dy / l;
    }
  }
  const double inf = std::numeric_limits<double>::infinity();
  ShiftPrecisionBound bound;
  bound.sigma_x_px = info_x > 0 ? 1.0 / std::sqrt(info_x) : inf;
  bound.sigma_y_px = info_y > 0 ? 1.0 / std::sqrt(info_y) : inf;
  return bound;
}

}  // namespace livealign
