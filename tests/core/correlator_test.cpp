#include "core/correlator.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <iostream>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/fft.hpp"
#include "core/simulator.hpp"
#include "core/template_registration.hpp"
#include "core/thread_pool.hpp"
#include "tests/support/low_dose_jump.hpp"

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

// Smooth synthetic content: random Gaussian blobs, evaluated analytically at
// shifted coordinates, so frame(shift) is the exact translate (content moved
// by +shift) of frame(0) — including content that enters at the edges.
struct Blob {
  double x, y, sigma, amplitude;
};

std::vector<Blob> RandomBlobs(Shape shape, int count, unsigned seed, double min_sigma = 2.0,
                              double max_sigma = 5.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> ux(-40, shape.cols + 40), uy(-40, shape.rows + 40),
      us(min_sigma, max_sigma), ua(0.2, 1.0);
  std::vector<Blob> blobs;
  for (int k = 0; k < count; ++k) blobs.push_back({ux(rng), uy(rng), us(rng), ua(rng)});
  return blobs;
}

void AddBlobs(const std::vector<Blob>& blobs, Shift shift, Frame* frame) {
  for (const Blob& b : blobs) {
    const double cx = b.x + shift.x, cy = b.y + shift.y, reach = 5 * b.sigma;
    const int r0 = std::max(0, static_cast<int>(cy - reach));
    const int r1 = std::min(frame->rows() - 1, static_cast<int>(cy + reach));
    const int c0 = std::max(0, static_cast<int>(cx - reach));
    const int c1 = std::min(frame->cols() - 1, static_cast<int>(cx + reach));
    for (int r = r0; r <= r1; ++r)
      for (int c = c0; c <= c1; ++c) {
        const double d2 = (c - cx) * (c - cx) + (r - cy) * (r - cy);
        frame->at(r, c) += static_cast<float>(b.amplitude * std::exp(-d2 / (2 * b.sigma * b.sigma)));
      }
  }
}

Frame BlobFrame(Shape shape, const std::vector<Blob>& blobs, Shift shift) {
  Frame frame(shape);
  for (int r = 0; r < shape.rows; ++r)
    for (int c = 0; c < shape.cols; ++c) frame.at(r, c) = 10.0f;  // offset: mean removal matters
  AddBlobs(blobs, shift, &frame);
  return frame;
}

// Periodic, band-limited random content: white noise low-passed by a Gaussian
// envelope (sigma_k cycles/px) and moved by a Fourier phase ramp, so
// PeriodicNoise(d) is EXACTLY PeriodicNoise(0) with its content moved by +d
// (cyclically). With no window this gives exact known answers.
Frame PeriodicNoise(Shape shape, unsigned seed, Shift shift, double sigma_k = 0.05) {
  RealFft2d fft(shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::int64_t k = 0; k < shape.Pixels(); ++k) fft.real()[k] = normal(rng);
  fft.Forward();
  for (int r = 0; r < shape.rows; ++r) {
    const int fy = SignedFrequency(r, shape.rows);
    for (int c = 0; c < fft.spectrum_cols(); ++c) {
      cfloat& v = fft.spectrum()[static_cast<std::size_t>(r) * fft.spectrum_cols() + c];
      const bool nyquist = (shape.rows % 2 == 0 && r == shape.rows / 2) ||
                           (shape.cols % 2 == 0 && c == shape.cols / 2);
      const double ky = static_cast<double>(fy) / shape.rows, kx = static_cast<double>(c) / shape.cols;
      const double envelope = nyquist ? 0.0 : std::exp(-(kx * kx + ky * ky) / (2 * sigma_k * sigma_k));
      const double phase = -2 * M_PI * (kx * shift.x + ky * shift.y);
      v *= static_cast<float>(envelope / shape.Pixels()) *
           cfloat(static_cast<float>(std::cos(phase)), static_cast<float>(std::sin(phase)));
    }
  }
  fft.Inverse();
  Frame frame(shape);
  for (std::int64_t k = 0; k < shape.Pixels(); ++k) frame.data()[k] = 5.0f + 100.0f * fft.real()[k];
  return frame;
}

// The correlator ranking crystal translates by itself: a 2x oversampled map
// and three refined candidates (the product leaves hops to the engine's
// solver and uses 1 and 1, the defaults).
CorrelatorOptions HopFree() {
  CorrelatorOptions options;
  options.oversample = 2;
  options.refine_candidates = 3;
  return options;
}

CorrelatorOptions NoWindow() {
  CorrelatorOptions options;
  options.window = WindowType::kNone;
  return options;
}

// A square lattice of period `period` px (cosines, exactly shiftable).
void AddLattice(double period, double amplitude, Shift shift, Frame* frame) {
  const double k = 2 * M_PI / period;
  for (int r = 0; r < frame->rows(); ++r)
    for (int c = 0; c < frame->cols(); ++c)
      frame->at(r, c) += static_cast<float>(
          amplitude * (std::cos(k * (c - shift.x)) + std::cos(k * (r - shift.y))));
}

double Distance(Shift a, Shift b) { return (a - b).Norm(); }

TEST_CASE("correlation type names parse and print back", "[core][correlator]") {
  for (auto type : {CorrelationType::kCc, CorrelationType::kPc, CorrelationType::kHybrid}) {
    REQUIRE(CorrelationTypeFromName(CorrelationTypeName(type)) == type);
  }
  REQUIRE_FALSE(CorrelationTypeFromName("mutual").has_value());
}

TEST_CASE("correlator options are checked", "[core][correlator]") {
  std::string error;
  REQUIRE(CorrelatorOptions{}.Check(&error));
  CorrelatorOptions o;
  SECTION("hybrid p above 1") {
    o.type = CorrelationType::kHybrid;
    o.hybrid_p = 1.5;
  }
  SECTION("top_k 0") { o.top_k = 0; }
  SECTION("refine_candidates 0") { o.refine_candidates = 0; }
  SECTION("oversample 0") { o.oversample = 0; }
  SECTION("negative max shift") { o.max_shift_px = -1; }
  SECTION("coarse band not FFT-friendly") { o.coarse_band_px = 70; }
  SECTION("bad tukey alpha") { o.tukey_alpha = 2; }
  SECTION("bad weight") { o.weight.sigma_cycles_per_px = -1; }
  REQUIRE_FALSE(o.Check(&error));
  REQUIRE_FALSE(error.empty());
  REQUIRE_THROWS_AS(Correlator(o, Shape{64, 64}, 1), std::invalid_argument);
}

TEST_CASE("misuse of the correlator throws", "[core][correlator]") {
  REQUIRE_THROWS_AS(Correlator(CorrelatorOptions{}, Shape{0, 64}, 1), std::invalid_argument);
  REQUIRE_THROWS_AS(Correlator(CorrelatorOptions{}, Shape{64, 64}, 0), std::invalid_argument);
  Correlator correlator(CorrelatorOptions{}, Shape{64, 64}, 1);
  Frame wrong(Shape{64, 32});
  REQUIRE_THROWS_AS(correlator.AddFrame(wrong.view()), std::invalid_argument);
  Frame frame = BlobFrame(Shape{64, 64}, RandomBlobs(Shape{64, 64}, 30, 1), {0, 0});
  correlator.AddFrame(frame.view());
  REQUIRE_THROWS_AS(correlator.Correlate(0, 1, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(correlator.Correlate(0, 0, 1), std::invalid_argument);
  REQUIRE_THROWS_AS(correlator.Correlate(0, 0, 0, Shift{0, 0}, 0.0), std::invalid_argument);
  REQUIRE_THROWS_AS(correlator.CorrelateCoarse(0, 0, 0.0, 0), std::invalid_argument);
}

TEST_CASE("the band size follows the weight's band limit per axis", "[core][correlator]") {
  Correlator square(CorrelatorOptions{}, Shape{256, 256}, 1);
  REQUIRE(square.band_rows() == 64);
  REQUIRE(square.band_cols() == 64);
  REQUIRE(square.map_shape() == Shape{64, 64});  // oversample 1
  REQUIRE(Correlator(HopFree(), Shape{256, 256}, 1).map_shape() == Shape{128, 128});
  Correlator wide(CorrelatorOptions{}, Shape{192, 256}, 1);
  REQUIRE(wide.band_rows() == 48);
  REQUIRE(wide.band_cols() == 64);
  CorrelatorOptions none;
  none.weight.type = FourierWeightType::kNone;
  Correlator full(none, Shape{96, 80}, 1);
  REQUIRE(full.band_shape() == Shape{96, 80});

  Frame frame = BlobFrame(Shape{256, 256}, RandomBlobs(Shape{256, 256}, 100, 2), {0, 0});
  REQUIRE(square.num_frames() == 0);
  REQUIRE(square.AddFrame(frame.view()) == 0);
  REQUIRE(square.AddFrame(frame.view()) == 1);
  REQUIRE(square.num_frames() == 2);
  // Fine band 64 x 33 in half-float complex (the default) + coarse band
  // 64 x 33 complex floats per frame.
  REQUIRE(square.cache_bytes() == 2 * (4 * 64 * 33 + 8 * 64 * 33));
}

TEST_CASE("a frame against itself peaks at zero with height 1", "[core][correlator]") {
  const Shape shape{128, 128};
  CorrelatorOptions options;
  options.type = GENERATE(CorrelationType::kCc, CorrelationType::kPc, CorrelationType::kHybrid);
  CAPTURE(CorrelationTypeName(options.type));
  Correlator correlator(options, shape, 1);
  const Frame frame = BlobFrame(shape, RandomBlobs(shape, 80, 3), {0, 0});
  const int a = correlator.AddFrame(frame.view());
  const int b = correlator.AddFrame(frame.view());
  const PairMeasurement m = correlator.Correlate(a, b, 0);
  REQUIRE_FALSE(m.candidates.empty());
  REQUIRE(m.i == a);
  REQUIRE(m.j == b);
  REQUIRE(m.candidates[0].refined);
  REQUIRE_THAT(m.candidates[0].j_from_i.x, WithinAbs(0.0, 1e-3));
  REQUIRE_THAT(m.candidates[0].j_from_i.y, WithinAbs(0.0, 1e-3));
  REQUIRE_THAT(m.candidates[0].height, WithinAbs(1.0, 1e-4));
  REQUIRE(m.peak_to_rms > 5);
}

TEST_CASE("known sub-pixel shifts are recovered to 0.02 px", "[core][correlator]") {
  const Shape shape{256, 256};
  auto [dx, dy] = GENERATE(table<double, double>({{0.0, 0.0},
                                                   {3.0, -7.0},
                                                   {0.37, -0.81},
                                                   {-12.25, 5.5},
                                                   {25.73, 18.19},
                                                   {-0.49, 0.51},
                                                   {-61.6, 59.3},    // near the 64 px window edge
                                                   {63.4, -63.8}}));
  CAPTURE(dx, dy);
  Correlator correlator(NoWindow(), shape, 1);
  correlator.AddFrame(PeriodicNoise(shape, 11, {0, 0}).view());
  correlator.AddFrame(PeriodicNoise(shape, 11, {dx, dy}).view());
  const PairMeasurement m = correlator.Correlate(0, 1, 0);
  REQUIRE_FALSE(m.candidates.empty());
  const PeakCandidate& best = m.candidates[0];
  CAPTURE(best);
  REQUIRE(best.refined);
  REQUIRE_THAT(best.j_from_i.x, WithinAbs(dx, 0.02));
  REQUIRE_THAT(best.j_from_i.y, WithinAbs(dy, 0.02));
  REQUIRE(best.height > 0.99);

  // The reverse pair measures the inverse.
  const PairMeasurement back = correlator.Correlate(1, 0, 0);
  REQUIRE_THAT(back.candidates.at(0).j_from_i.x, WithinAbs(-dx, 0.02));
  REQUIRE_THAT(back.candidates.at(0).j_from_i.y, WithinAbs(-dy, 0.02));
}

TEST_CASE("every weight and correlation type recovers a known shift", "[core][correlator]") {
  const Shape shape{256, 256};
  const Shift truth{-9.37, 4.62};
  CorrelatorOptions options = NoWindow();
  options.weight.type = GENERATE(FourierWeightType::kNone, FourierWeightType::kGaussian,
                                 FourierWeightType::kLowpass, FourierWeightType::kBandpass);
  options.type = GENERATE(CorrelationType::kCc, CorrelationType::kPc, CorrelationType::kHybrid);
  options.hybrid_p = 0.7;
  CAPTURE(FourierWeightTypeName(options.weight.type), CorrelationTypeName(options.type));
  Correlator correlator(options, shape, 1);
  // Content up to high frequencies, so pc with no weight has signal to whiten.
  correlator.AddFrame(PeriodicNoise(shape, 12, {0, 0}, 0.15).view());
  correlator.AddFrame(PeriodicNoise(shape, 12, truth, 0.15).view());
  const PairMeasurement m = correlator.Correlate(0, 1, 0);
  REQUIRE_FALSE(m.candidates.empty());
  CAPTURE(m);
  REQUIRE(m.candidates[0].refined);
  REQUIRE_THAT(m.candidates[0].j_from_i.x, WithinAbs(truth.x, 0.02));
  REQUIRE_THAT(m.candidates[0].j_from_i.y, WithinAbs(truth.y, 0.02));
}

TEST_CASE("non-square frames correlate with the right axes", "[core][correlator]") {
  const Shape shape{160, 256};
  const Shift truth{17.3, -6.8};
  Correlator correlator(NoWindow(), shape, 1);
  REQUIRE(correlator.band_shape() == Shape{40, 64});
  correlator.AddFrame(PeriodicNoise(shape, 13, {0, 0}).view());
  correlator.AddFrame(PeriodicNoise(shape, 13, truth).view());
  const PairMeasurement m = correlator.Correlate(0, 1, 0);
  REQUIRE_FALSE(m.candidates.empty());
  REQUIRE_THAT(m.candidates[0].j_from_i.x, WithinAbs(truth.x, 0.02));
  REQUIRE_THAT(m.candidates[0].j_from_i.y, WithinAbs(truth.y, 0.02));
}

TEST_CASE("the cropped inverse FFT is the full correlation sampled every N/M px",
          "[core][correlator]") {
  const Shape shape{128, 192};
  CorrelatorOptions options;
  options.oversample = GENERATE(1, 2);
  CAPTURE(options.oversample);
  const std::vector<Blob> blobs = RandomBlobs(shape, 100, 14);
  const Frame f0 = BlobFrame(shape, blobs, {0, 0});
  const Frame f1 = BlobFrame(shape, blobs, {5.3, -2.1});
  Correlator correlator(options, shape, 1);
  correlator.AddFrame(f0.view());
  correlator.AddFrame(f1.view());
  const Frame map = correlator.CorrelationMap(0, 1, 0);

  // Reference: full-size spectra, product with W, full-size c2r.
  const Preprocessor pre(options.window, options.tukey_alpha, shape);
  const FourierWeight weight(options.weight);
  RealFft2d fft(shape);
  pre.Apply(f0.view(), fft.real());
  fft.Forward();
  std::vector<cfloat> s0(fft.spectrum(), fft.spectrum() + fft.spectrum_size());
  pre.Apply(f1.view(), fft.real());
  fft.Forward();
  double e0 = 0, e1 = 0;
  for (int r = 0; r < shape.rows; ++r)
    for (int c = 0; c < fft.spectrum_cols(); ++c) {
      const std::size_t k = static_cast<std::size_t>(r) * fft.spectrum_cols() + c;
      const double w = weight.At(static_cast<double>(c) / shape.cols,
                                 static_cast<double>(SignedFrequency(r, shape.rows)) / shape.rows);
      const double mult = c == 0 ? 1 : 2;
      e0 += mult * w * std::norm(s0[k]);
      e1 += mult * w * std::norm(fft.spectrum()[k]);
      fft.spectrum()[k] = static_cast<float>(w) * std::conj(s0[k]) * fft.spectrum()[k];
    }
  fft.Inverse();
  const double norm = std::sqrt(e0 * e1);
  const int step_r = shape.rows / map.rows(), step_c = shape.cols / map.cols();
  REQUIRE(step_r * map.rows() == shape.rows);
  REQUIRE(step_c * map.cols() == shape.cols);
  double max_error = 0, max_value = 0;
  for (int r = 0; r < map.rows(); ++r)
    for (int c = 0; c < map.cols(); ++c) {
      const double want = fft.real()[static_cast<std::size_t>(r * step_r) * shape.cols + c * step_c] / norm;
      max_error = std::max(max_error, std::abs(map.at(r, c) - want));
      max_value = std::max(max_value, std::abs(want));
    }
  CAPTURE(max_error, max_value);
  REQUIRE(max_value > 0.5);
  REQUIRE(max_error < 1e-4 * max_value);
}

TEST_CASE("a lattice gives distinct lattice-translate candidates", "[core][correlator]") {
  const Shape shape{256, 256};
  const double period = 16;
  const Shift truth{3.3, -2.7};
  Frame f0(shape), f1(shape);
  AddLattice(period, 1.0, {0, 0}, &f0);
  AddLattice(period, 1.0, truth, &f1);
  CorrelatorOptions options = HopFree();
  options.top_k = 5;
  Correlator correlator(options, shape, 1);
  correlator.AddFrame(f0.view());
  correlator.AddFrame(f1.view());
  const PairMeasurement m = correlator.Correlate(0, 1, 0);
  REQUIRE(m.candidates.size() == 5);
  int on_lattice = 0;
  for (std::size_t a = 0; a < m.candidates.size(); ++a) {
    for (std::size_t b = a + 1; b < m.candidates.size(); ++b) {
      REQUIRE(Distance(m.candidates[a].j_from_i, m.candidates[b].j_from_i) > 4);
      REQUIRE(m.candidates[a].height >= m.candidates[b].height);
    }
    const Shift offset = m.candidates[a].j_from_i - truth;
    const Shift n{std::round(offset.x / period), std::round(offset.y / period)};
    if (Distance(offset, n * period) < 0.3) ++on_lattice;
  }
  REQUIRE(on_lattice == 5);
  // The window envelope favours the translate nearest zero shift: the truth.
  REQUIRE(Distance(m.candidates[0].j_from_i, truth) < 0.02);

  SECTION("a predicted window selects one translate (hop-free search)") {
    const Shift hopped = truth + Shift{period, 0};
    const PairMeasurement w = correlator.Correlate(0, 1, 0, hopped + Shift{1.5, -1.0}, 5.0);
    REQUIRE_FALSE(w.candidates.empty());
    REQUIRE(Distance(w.candidates[0].j_from_i, hopped) < 0.05);
    for (const PeakCandidate& c : w.candidates) {
      REQUIRE(std::abs(c.j_from_i.x - (hopped.x + 1.5)) <= 6.0);
      REQUIRE(std::abs(c.j_from_i.y - (hopped.y - 1.0)) <= 6.0);
    }
  }
  SECTION("Refine converges on the translate it starts near") {
    const Shift other = truth + Shift{0, -period};
    const PeakCandidate c = correlator.Refine(0, 1, other + Shift{0.6, 0.4}, 0);
    REQUIRE(c.refined);
    // 0.05: a translate 16 px further out carries more of the window bias.
    REQUIRE_THAT(c.j_from_i.x, WithinAbs(other.x, 0.05));
    REQUIRE_THAT(c.j_from_i.y, WithinAbs(other.y, 0.05));
    REQUIRE(c.height > 0.1);
  }
}

TEST_CASE("the max-shift window excludes peaks beyond it", "[core][correlator]") {
  const Shape shape{256, 256};
  const Shift truth{30.4, 0.2};
  CorrelatorOptions options = NoWindow();
  options.max_shift_px = 20;
  Correlator correlator(options, shape, 1);
  const Frame f0 = PeriodicNoise(shape, 15, {0, 0}), f1 = PeriodicNoise(shape, 15, truth);
  correlator.AddFrame(f0.view());
  correlator.AddFrame(f1.view());
  const PairMeasurement m = correlator.Correlate(0, 1, 0);
  for (const PeakCandidate& c : m.candidates) {
    REQUIRE(Distance(c.j_from_i, truth) > 5);
    REQUIRE(std::abs(c.j_from_i.x) <= 21);
    REQUIRE(std::abs(c.j_from_i.y) <= 21);
  }
  // A wider window finds it.
  options.max_shift_px = 40;
  Correlator wide(options, shape, 1);
  wide.AddFrame(f0.view());
  wide.AddFrame(f1.view());
  REQUIRE(Distance(wide.Correlate(0, 1, 0).candidates.at(0).j_from_i, truth) < 0.02);
}

TEST_CASE("the coarse correlation ignores the lattice and follows the blob",
          "[core][correlator]") {
  const Shape shape{256, 256};
  const double period = 12;  // first Bragg ring at 1/12 = 0.083 cycles/px
  const std::vector<Blob> blob{{110, 140, 14, 4.0}, {60, 70, 9, 2.0}};
  const Shift truth = GENERATE(Shift{13.2, -7.6}, Shift{-5.9, 20.4}, Shift{0.3, 0.2});
  CAPTURE(truth);
  Frame f0(shape), f1(shape);
  AddLattice(period, 1.0, {0, 0}, &f0);
  AddBlobs(blob, {0, 0}, &f0);
  AddLattice(period, 1.0, truth, &f1);
  AddBlobs(blob, truth, &f1);
  Correlator correlator(CorrelatorOptions{}, shape, 1);
  correlator.AddFrame(f0.view());
  correlator.AddFrame(f1.view());
  const PairMeasurement coarse = correlator.CorrelateCoarse(0, 1, 0.04, 0);
  REQUIRE(coarse.has_coarse);
  CAPTURE(coarse.coarse_j_from_i);
  // Hop-free: well within half a lattice period.
  REQUIRE(Distance(coarse.coarse_j_from_i, truth) < 1.0);
  REQUIRE(coarse.candidates.at(0).j_from_i == coarse.coarse_j_from_i);
  // A clear coarse correlation stands far above the rest of the coarse map,
  // unlike two unrelated noise frames.
  CAPTURE(coarse.peak_to_rms);
  REQUIRE(coarse.peak_to_rms > 4);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(100.0f, 10.0f);
  Frame n0(shape), n1(shape);
  for (std::int64_t k = 0; k < shape.Pixels(); ++k) {
    n0.data()[k] = normal(rng);
    n1.data()[k] = normal(rng);
  }
  const int a = correlator.AddFrame(n0.view()), b = correlator.AddFrame(n1.view());
  const PairMeasurement unrelated = correlator.CorrelateCoarse(a, b, 0.04, 0);
  CAPTURE(unrelated.peak_to_rms);
  REQUIRE(unrelated.peak_to_rms > 0);
  REQUIRE(unrelated.peak_to_rms < 0.5 * coarse.peak_to_rms);

  // The fine stage inside a window around the coarse result picks the right
  // translate. The residual (< 0.1 px) is the fixed window's bias on content
  // moving under it, which the template-registration stage removes.
  const PairMeasurement fine = correlator.Correlate(0, 1, 0, coarse.coarse_j_from_i, 0.4 * period);
  REQUIRE_FALSE(fine.candidates.empty());
  REQUIRE(Distance(fine.candidates[0].j_from_i, truth) < 0.1);
}

TEST_CASE("the run correlation of the frames either side of a low-dose stage jump picks the true translate",
          "[core][correlator]") {
  // The simulated perovskite at 0.2 counts/px, 32 frames either side of a
  // jump of 1.7 lattice spacings, at their true shifts.
  const SimulatorOptions sim = testing::LowDoseJump(32, 1.7);
  Simulator microscope(sim, 9);
  Correlator correlator(CorrelatorOptions{}, sim.shape, 1);
  std::vector<int> first, second;
  std::vector<Shift> first_shifts, second_shifts;
  for (int k = 0; k < 64; ++k) {
    const int slot = correlator.AddFrame(microscope.NextFrame().view());
    (k < 32 ? first : second).push_back(slot);
    (k < 32 ? first_shifts : second_shifts).push_back(microscope.TrueShift(k));
  }
  // The lattice translates within two cells (the simulator's cell: 16 px,
  // rotated by 7 degrees).
  const double angle = sim.rotation_deg * M_PI / 180;
  const Shift a{16 * std::cos(angle), 16 * std::sin(angle)}, b{-16 * std::sin(angle), 16 * std::cos(angle)};
  std::vector<Shift> translates;
  for (int na = -2; na <= 2; ++na)
    for (int nb = -2; nb <= 2; ++nb) translates.push_back(a * na + b * nb);
  const std::size_t zero = translates.size() / 2;
  // Below the first Bragg ring (1/16 cycles/px), as the coarse stage uses it.
  const double cutoff = 0.6 / 16;
  const auto best_and_margin = [&](const std::vector<double>& heights) {
    const std::size_t best = static_cast<std::size_t>(std::max_element(heights.begin(), heights.end()) - heights.begin());
    double second_best = -1;
    for (std::size_t c = 0; c < heights.size(); ++c)
      if (c != best) second_best = std::max(second_best, heights[c]);
    return std::make_pair(best, heights[best] - second_best);
  };
  const std::vector<double> at_truth =
      correlator.CoarseRunCorrelation(first, first_shifts, second, second_shifts, translates, cutoff);
  REQUIRE(at_truth.size() == translates.size());
  const auto [best, margin] = best_and_margin(at_truth);
  CAPTURE(at_truth[best], margin);
  CHECK(best == zero);
  CHECK(margin > 0.03);
  // The second run placed a lattice vector off: the translate that undoes it wins.
  std::vector<Shift> off = second_shifts;
  for (Shift& s : off) s = s - b;
  const auto [best_off, margin_off] =
      best_and_margin(correlator.CoarseRunCorrelation(first, first_shifts, second, off, translates, cutoff));
  CAPTURE(margin_off);
  CHECK(translates[best_off].x == Approx(b.x));
  CHECK(translates[best_off].y == Approx(b.y));

  REQUIRE_THROWS_AS(correlator.CoarseRunCorrelation({}, {}, second, second_shifts, translates, cutoff),
                    std::invalid_argument);
  const std::vector<Shift> too_few(first_shifts.begin(), first_shifts.begin() + 5);
  REQUIRE_THROWS_AS(correlator.CoarseRunCorrelation(first, too_few, second, second_shifts, translates, cutoff),
                    std::invalid_argument);
  REQUIRE_THROWS_AS(correlator.CoarseRunCorrelation(first, first_shifts, second, second_shifts, translates, 0.0),
                    std::invalid_argument);
}

TEST_CASE("workers correlate concurrently with the same results", "[core][correlator]") {
  const Shape shape{128, 128};
  const int frames = 6;
  Correlator correlator(NoWindow(), shape, 2);
  for (int k = 0; k < frames; ++k) {
    correlator.AddFrame(PeriodicNoise(shape, 16, {1.7 * k, -0.9 * k}).view());
  }
  std::vector<std::pair<int, int>> pairs;
  for (int j = 1; j < frames; ++j)
    for (int i = 0; i < j; ++i) pairs.push_back({i, j});
  std::vector<PairMeasurement> serial, parallel(pairs.size());
  for (const auto& [i, j] : pairs) serial.push_back(correlator.Correlate(i, j, 0));
  ThreadPool pool(2);
  pool.ParallelFor(static_cast<int>(pairs.size()), [&](int index, int worker) {
    parallel[index] = correlator.Correlate(pairs[index].first, pairs[index].second, worker);
  });
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    REQUIRE(parallel[k] == serial[k]);
    const Shift want{1.7 * (pairs[k].second - pairs[k].first), -0.9 * (pairs[k].second - pairs[k].first)};
    REQUIRE(Distance(serial[k].candidates.at(0).j_from_i, want) < 0.02);
  }
}

TEST_CASE("shifts survive strong white noise", "[core][correlator]") {
  // Per-pixel noise as strong as the signal: the Gaussian weight's band keeps
  // only the low frequencies, where the content dominates.
  const Shape shape{256, 256};
  const Shift truth{7.43, -11.61};
  Frame f0 = PeriodicNoise(shape, 21, {0, 0}), f1 = PeriodicNoise(shape, 21, truth);
  double power = 0;
  for (std::int64_t k = 0; k < shape.Pixels(); ++k) power += std::pow(f0.data()[k] - 5.0, 2);
  const float sigma = static_cast<float>(std::sqrt(power / shape.Pixels()));
  std::mt19937 rng(22);
  std::normal_distribution<float> noise(0.0f, sigma);
  for (std::int64_t k = 0; k < shape.Pixels(); ++k) {
    f0.data()[k] += noise(rng);
    f1.data()[k] += noise(rng);
  }
  const CorrelationType type = GENERATE(CorrelationType::kCc, CorrelationType::kHybrid);
  CorrelatorOptions options = NoWindow();
  options.type = type;
  Correlator correlator(options, shape, 1);
  correlator.AddFrame(f0.view());
  correlator.AddFrame(f1.view());
  const PairMeasurement m = correlator.Correlate(0, 1, 0);
  CAPTURE(CorrelationTypeName(type), m, m.peak_to_rms);
  REQUIRE(Distance(m.candidates.at(0).j_from_i, truth) < 0.1);  // measured ~0.05
  REQUIRE(m.peak_to_rms > 10);
}

TEST_CASE("odd, unfriendly frame sizes work without a crop", "[core][correlator]") {
  const Shape shape{101, 99};
  const Shift truth{-3.41, 6.27};
  CorrelatorOptions options = NoWindow();
  options.weight.type = FourierWeightType::kNone;
  Correlator correlator(options, shape, 1);
  REQUIRE(correlator.band_shape() == shape);
  correlator.AddFrame(PeriodicNoise(shape, 19, {0, 0}).view());
  correlator.AddFrame(PeriodicNoise(shape, 19, truth).view());
  const PairMeasurement m = correlator.Correlate(0, 1, 0);
  REQUIRE_FALSE(m.candidates.empty());
  REQUIRE_THAT(m.candidates[0].j_from_i.x, WithinAbs(truth.x, 0.02));
  REQUIRE_THAT(m.candidates[0].j_from_i.y, WithinAbs(truth.y, 0.02));
}

TEST_CASE("frames can be added while earlier slots are being correlated", "[core][correlator]") {
  const Shape shape{128, 128};
  const int frames = 12;
  std::vector<Frame> inputs;
  for (int k = 0; k < frames; ++k) inputs.push_back(PeriodicNoise(shape, 20, {0.8 * k, 0.3 * k}));
  Correlator correlator(NoWindow(), shape, 1);
  correlator.AddFrame(inputs[0].view());
  correlator.AddFrame(inputs[1].view());
  const PairMeasurement before = correlator.Correlate(0, 1, 0);
  std::vector<PairMeasurement> during;
  std::thread adder([&] {
    for (int k = 2; k < frames; ++k) correlator.AddFrame(inputs[k].view());
  });
  // Correlate slot 0 against every slot that exists, as it appears.
  for (int round = 0; round < 50; ++round) {
    during.push_back(correlator.Correlate(0, 1, 0));
    const int last = correlator.num_frames() - 1;
    const PairMeasurement m = correlator.Correlate(0, last, 0);
    REQUIRE(Distance(m.candidates.at(0).j_from_i, Shift{0.8 * last, 0.3 * last}) < 0.02);
  }
  adder.join();
  REQUIRE(correlator.num_frames() == frames);
  for (const PairMeasurement& m : during) REQUIRE(m == before);
}

// With the default Tukey window, non-periodic content moving under the fixed
// window is not an exact translate: the peak is pulled toward 0. This bounds
// what remains after the envelope correction (and shows it helps).
TEST_CASE("windowed non-periodic content keeps the window bias small", "[core][correlator]") {
  const Shape shape{256, 256};
  const std::vector<Blob> blobs = RandomBlobs(shape, 220, 18);
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-30, 30);
  double sum_sq_on = 0, sum_sq_off = 0;
  const int trials = 8;
  CorrelatorOptions on, off;
  off.correct_window_bias = false;
  for (int t = 0; t < trials; ++t) {
    const Shift truth{u(rng), u(rng)};
    Correlator a(on, shape, 1), b(off, shape, 1);
    const Frame f0 = BlobFrame(shape, blobs, {0, 0}), f1 = BlobFrame(shape, blobs, truth);
    a.AddFrame(f0.view());
    a.AddFrame(f1.view());
    b.AddFrame(f0.view());
    b.AddFrame(f1.view());
    const double e_on = Distance(a.Correlate(0, 1, 0).candidates.at(0).j_from_i, truth);
    const double e_off = Distance(b.Correlate(0, 1, 0).candidates.at(0).j_from_i, truth);
    CAPTURE(truth, e_on, e_off);
    REQUIRE(e_on < 0.02 + 0.01 * truth.Norm());
    sum_sq_on += e_on * e_on;
    sum_sq_off += e_off * e_off;
  }
  const double rms_on = std::sqrt(sum_sq_on / trials), rms_off = std::sqrt(sum_sq_off / trials);
  CAPTURE(rms_on, rms_off);
  REQUIRE(rms_on < rms_off);
}

// Outcome of correlating every pair (i < j) of a simulated series whose true
// shift is below 0.4 lattice spacings, with the hop-free correlator.
struct LatticePairStats {
  int pairs = 0;
  int best_right = 0;       // candidates[0] within 0.35 spacings of the truth
  int among_candidates = 0;  // some candidate within 0.35 spacings of the truth
  double BestFraction() const { return pairs ? static_cast<double>(best_right) / pairs : 0.0; }
  double AmongFraction() const { return pairs ? static_cast<double>(among_candidates) / pairs : 0.0; }
};

LatticePairStats CorrelateSimulatedPairs(const std::vector<Frame>& frames,
                                         const std::vector<Shift>& true_shifts, double spacing) {
  Correlator correlator(HopFree(), frames.at(0).shape(), 1);
  for (const Frame& f : frames) correlator.AddFrame(f.view());
  LatticePairStats stats;
  for (int j = 1; j < static_cast<int>(frames.size()); ++j) {
    for (int i = 0; i < j; ++i) {
      const Shift truth = true_shifts[j] - true_shifts[i];
      if (truth.Norm() >= 0.4 * spacing) continue;
      const PairMeasurement m = correlator.Correlate(i, j, 0);
      ++stats.pairs;
      if (!m.candidates.empty() && Distance(m.candidates[0].j_from_i, truth) < 0.35 * spacing) {
        ++stats.best_right;
      }
      for (const PeakCandidate& c : m.candidates) {
        if (Distance(c.j_from_i, truth) < 0.35 * spacing) {
          ++stats.among_candidates;
          break;
        }
      }
    }
  }
  return stats;
}

TEST_CASE("refining every candidate finds the highest refined maximum, which one refined candidate can miss",
          "[core][correlator]") {
  // 256^2 perovskite at 0.2 counts/px: the one candidate refined by default
  // (the highest fitted on the 4 px map grid) is often a lower translate.
  SimulatorOptions options;
  options.shape = Shape{256, 256};
  const SimulatedSeries series = Simulate(options, 12, 7);
  Correlator correlator(CorrelatorOptions{}, options.shape, 1);
  for (const Frame& f : series.frames) correlator.AddFrame(f.view());
  int higher = 0;
  for (int j = 1; j < 12; ++j) {
    const PairMeasurement one = correlator.Correlate(j - 1, j, 0);
    const PairMeasurement every = correlator.CorrelateEveryCandidate(j - 1, j, 0);
    REQUIRE_FALSE(one.candidates.empty());
    REQUIRE_FALSE(every.candidates.empty());
    CAPTURE(j, one.candidates.front().height, every.candidates.front().height);
    // A superset of the refinements: never lower.
    CHECK(every.candidates.front().height >= one.candidates.front().height - 1e-9);
    higher += every.candidates.front().height > one.candidates.front().height + 1e-6 ? 1 : 0;
    // The refined candidates come first, by refined height.
    for (std::size_t c = 1; c < every.candidates.size() && every.candidates[c].refined; ++c)
      CHECK(every.candidates[c].height <= every.candidates[c - 1].height);
  }
  CHECK(higher > 0);
}

TEST_CASE("on a simulated crystal the best candidate is the true translate",
          "[core][correlator]") {
  // Default specimen: 512^2 perovskite, 16 px cells, sigma 1.8 px columns. The
  // correlation is a lattice of nearly equal peaks about as wide as the map
  // grid (4 px), so the best SAMPLED peak is often a neighbouring translate;
  // only the refined heights carry the window envelope that favours the truth.
  SimulatorOptions options;
  options.dose_counts_per_px = 5;
  const SimulatedSeries series = Simulate(options, 40, 11, /*keep_noise_free=*/true);
  const double spacing = options.lattice_spacing_px;

  const LatticePairStats noise_free =
      CorrelateSimulatedPairs(series.noise_free_frames, series.true_shifts, spacing);
  CAPTURE(noise_free.pairs, noise_free.best_right, noise_free.BestFraction());
  REQUIRE(noise_free.pairs > 200);
  REQUIRE(noise_free.best_right == noise_free.pairs);

  const LatticePairStats dose5 = CorrelateSimulatedPairs(series.frames, series.true_shifts, spacing);
  CAPTURE(dose5.pairs, dose5.best_right, dose5.BestFraction());
  REQUIRE(dose5.BestFraction() >= 0.99);
}

TEST_CASE("at low dose the true translate is among the candidates", "[core][correlator]") {
  SimulatorOptions options;
  options.dose_counts_per_px = 0.2;
  const SimulatedSeries series = Simulate(options, 40, 11);
  const LatticePairStats stats =
      CorrelateSimulatedPairs(series.frames, series.true_shifts, options.lattice_spacing_px);
  CAPTURE(stats.pairs, stats.among_candidates, stats.AmongFraction(), stats.BestFraction());
  REQUIRE(stats.pairs > 200);
  REQUIRE(stats.AmongFraction() >= 0.95);
}

// Timing only (hidden): ./build/tests/livealign_core_tests "[.bench]"
TEST_CASE("correlator per-pair timing", "[.bench]") {
  for (int n : {512, 1024}) {
    const Shape shape{n, n};
    Correlator correlator(NoWindow(), shape, 1);
    const int frames = 24;
    std::vector<Shift> truth;
    auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < frames; ++k) {
      truth.push_back({0.713 * k, -0.419 * k});
      correlator.AddFrame(PeriodicNoise(shape, 17, truth.back()).view());
    }
    auto t1 = std::chrono::steady_clock::now();
    // Time only the correlations (frames are generated above).
    int pairs = 0;
    double max_error = 0;
    std::vector<PairMeasurement> results;
    results.reserve(frames * frames);
    auto t2 = std::chrono::steady_clock::now();
    const std::clock_t cpu0 = std::clock();
    for (int j = 1; j < frames; ++j)
      for (int i = 0; i < j; ++i) {
        results.push_back(correlator.Correlate(i, j, 0));
        ++pairs;
      }
    const std::clock_t cpu1 = std::clock();
    auto t3 = std::chrono::steady_clock::now();
    int index = 0;
    for (int j = 1; j < frames; ++j)
      for (int i = 0; i < j; ++i) {
        max_error = std::max(max_error, Distance(results[index++].candidates.at(0).j_from_i,
                                                 truth[j] - truth[i]));
      }
    const double pair_ms = std::chrono::duration<double, std::milli>(t3 - t2).count() / pairs;
    const double pair_cpu_ms = 1000.0 * (cpu1 - cpu0) / CLOCKS_PER_SEC / pairs;
    std::cout << n << "x" << n << " band " << correlator.band_rows() << ": " << pair_ms
              << " ms/pair wall, " << pair_cpu_ms
              << " ms/pair CPU (correlate + refine best, 1 thread), AddFrame incl. rendering "
              << std::chrono::duration<double, std::milli>(t1 - t0).count() / frames
              << " ms, max error " << max_error << " px over " << pairs << " pairs\n";
    REQUIRE(max_error < 0.02);

    TemplateRegistrar registrar(shape, TemplateRegistrationOptions{});
    const Frame templ = PeriodicNoise(shape, 17, {0, 0});
    const Frame moved = PeriodicNoise(shape, 17, {3.37, -2.71});
    registrar.SetTemplate(templ.view());
    TemplateRegistrationReport report;
    auto t4 = std::chrono::steady_clock::now();
    Shift s;
    for (int r = 0; r < 5; ++r) s = registrar.Register(moved.view(), {3, -3}, &report);
    auto t5 = std::chrono::steady_clock::now();
    std::cout << "  template registration: " << std::chrono::duration<double, std::milli>(t5 - t4).count() / 5
              << " ms/frame, error " << (s - Shift{3.37, -2.71}).Norm() << " px\n";
  }
}

// Timing and hop rate on the default simulated perovskite (hidden):
//   ./build/tests/livealign_core_tests "[.bench]"
// per oversample / refine_candidates setting; all pairs of 24 frames at dose 5.
TEST_CASE("correlator per-pair timing on a simulated crystal", "[.bench]") {
  for (int n : {512, 1024}) {
    SimulatorOptions sim;
    sim.shape = {n, n};
    sim.dose_counts_per_px = 5;
    const int frames = 24;
    const SimulatedSeries series = Simulate(sim, frames, 11);
    struct Setting {
      int oversample, refine;
    };
    for (const Setting setting : {Setting{1, 1}, Setting{1, 3}, Setting{2, 1}, Setting{2, 3},
                                  Setting{2, 5}}) {
      CorrelatorOptions options;
      options.oversample = setting.oversample;
      options.refine_candidates = setting.refine;
      Correlator correlator(options, sim.shape, 1);
      for (const Frame& f : series.frames) correlator.AddFrame(f.view());
      int pairs = 0, hops = 0;
      double cpu_s = 0;
      for (int j = 1; j < frames; ++j) {
        for (int i = 0; i < j; ++i) {
          const std::clock_t cpu0 = std::clock();
          const PairMeasurement m = correlator.Correlate(i, j, 0);
          cpu_s += static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
          ++pairs;
          const Shift truth = series.true_shifts[j] - series.true_shifts[i];
          if (m.candidates.empty() || Distance(m.candidates[0].j_from_i, truth) > 0.35 * sim.lattice_spacing_px) {
            ++hops;
          }
        }
      }
      std::cout << n << "x" << n << " oversample " << setting.oversample << " refine "
                << setting.refine << ": " << 1000.0 * cpu_s / pairs << " ms/pair CPU, best not the truth in "
                << hops << "/" << pairs << " pairs\n";
      REQUIRE(pairs > 0);
    }
  }
}

TEST_CASE("bands cached as half floats give the same shifts in half the band memory",
          "[core][correlator][fp16]") {
  // Low-dose perovskite frames: counts large enough in the low band that an
  // unscaled half float (max 65504) would overflow at 512^2.
  SimulatorOptions sim;
  sim.dose_counts_per_px = 2.0;
  SimulatedSeries series = Simulate(sim, 4, 12);
  // On the 1x map the brightest sample of a crystal pair may be any of several
  // near-equal lattice translates, whose order rounding can swap; the 2x map
  // with refined candidates ranks the true translate first.
  CorrelatorOptions full_options = HopFree();
  CorrelatorOptions half_options = HopFree();
  full_options.band_fp16 = false;
  half_options.band_fp16 = true;
  Correlator full(full_options, sim.shape, 1), half(half_options, sim.shape, 1);
  for (const Frame& f : series.frames) {
    full.AddFrame(f.view());
    half.AddFrame(f.view());
  }
  const std::size_t band_complex = static_cast<std::size_t>(full.band_rows()) * (full.band_cols() / 2 + 1);
  REQUIRE(full.cache_bytes() - half.cache_bytes() == 4 * band_complex * sizeof(std::complex<float>) / 2);
  for (int j = 1; j < 4; ++j) {
    const PairMeasurement a = full.Correlate(0, j, 0), b = half.Correlate(0, j, 0);
    REQUIRE_FALSE(a.candidates.empty());
    REQUIRE_FALSE(b.candidates.empty());
    const Shift truth = series.true_shifts[j] - series.true_shifts[0];
    CAPTURE(j, a.candidates[0].j_from_i.x, b.candidates[0].j_from_i.x, truth.x);
    // Rounding to 11 significant bits moves the refined peak far below the
    // shot-noise error (~0.01 px here).
    REQUIRE((a.candidates[0].j_from_i - b.candidates[0].j_from_i).Norm() < 1e-3);
    REQUIRE_THAT(b.candidates[0].height, WithinAbs(a.candidates[0].height, 1e-3));
    const PeakCandidate ra = full.Refine(0, j, truth, 0), rb = half.Refine(0, j, truth, 0);
    REQUIRE((ra.j_from_i - rb.j_from_i).Norm() < 1e-3);
  }
}

TEST_CASE("a spectrum tap reads the frame's pre-processed transform and leaves the bands as they were",
          "[core][correlator]") {
  SimulatorOptions sim;
  sim.shape = Shape{96, 128};
  sim.dose_counts_per_px = 2.0;
  Simulator microscope(sim, 4);
  const Frame frame = microscope.NextFrame();
  const CorrelatorOptions options;
  const Correlator correlator(options, sim.shape, 1);
  const auto plain = correlator.Prepare(frame.view());

  // The reference: the same window, the full transform.
  const Preprocessor preprocessor(options.window, options.tukey_alpha, sim.shape);
  RealFft2d fft(sim.shape);
  preprocessor.Apply(frame.view(), fft.real());
  fft.Forward();

  const int columns = fft.spectrum_cols() - 3;  // wider than the correlator's own bands
  int reads = 0;
  double worst = 0, scale = 0;
  Correlator::SpectrumTap tap;
  tap.columns = columns;
  tap.read = [&](const std::complex<float>* spectrum, int spectrum_cols) {
    ++reads;
    REQUIRE(spectrum_cols == fft.spectrum_cols());
    for (int r = 0; r < sim.shape.rows; ++r)
      for (int c = 0; c < columns; ++c) {
        const std::size_t at = static_cast<std::size_t>(r) * spectrum_cols + c;
        worst = std::max(worst, double{std::abs(spectrum[at] - fft.spectrum()[at])});
        scale = std::max(scale, double{std::abs(fft.spectrum()[at])});
      }
  };
  const auto tapped = correlator.Prepare(frame.view(), &tap);
  CHECK(reads == 1);
  CAPTURE(worst, scale);
  CHECK(worst <= 1e-5 * scale);
  CHECK(tapped->energy == Approx(plain->energy).epsilon(1e-6));
  REQUIRE(tapped->coarse.size() == plain->coarse.size());
  for (std::size_t k = 0; k < plain->coarse.size(); ++k)
    CHECK(std::abs(tapped->coarse[k] - plain->coarse[k]) <= 1e-5 * scale);

  tap.columns = fft.spectrum_cols() + 1;
  CHECK_THROWS_AS(correlator.Prepare(frame.view(), &tap), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
