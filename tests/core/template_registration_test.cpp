#include "core/template_registration.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

// Smooth non-periodic content (random Gaussian blobs evaluated analytically at
// shifted coordinates): Render(d) is Render(0) with its content moved by +d,
// including content that enters and leaves at the edges.
struct Blob {
  double x, y, sigma, amplitude;
};

std::vector<Blob> RandomBlobs(Shape shape, int count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> ux(-40, shape.cols + 40), uy(-40, shape.rows + 40),
      us(1.5, 5.0), ua(0.2, 1.0);
  std::vector<Blob> blobs;
  for (int k = 0; k < count; ++k) blobs.push_back({ux(rng), uy(rng), us(rng), ua(rng)});
  return blobs;
}

Frame Render(Shape shape, const std::vector<Blob>& blobs, Shift shift, double lattice_period = 0) {
  Frame frame(shape);
  for (int r = 0; r < shape.rows; ++r)
    for (int c = 0; c < shape.cols; ++c) {
      double v = 3.0;
      if (lattice_period > 0) {
        const double k = 2 * M_PI / lattice_period;
        v += std::cos(k * (c - shift.x)) + std::cos(k * (r - shift.y));
      }
      frame.at(r, c) = static_cast<float>(v);
    }
  for (const Blob& b : blobs) {
    const double cx = b.x + shift.x, cy = b.y + shift.y, reach = 5 * b.sigma;
    for (int r = std::max(0, static_cast<int>(cy - reach));
         r <= std::min(shape.rows - 1, static_cast<int>(cy + reach)); ++r)
      for (int c = std::max(0, static_cast<int>(cx - reach));
           c <= std::min(shape.cols - 1, static_cast<int>(cx + reach)); ++c) {
        const double d2 = (c - cx) * (c - cx) + (r - cy) * (r - cy);
        frame.at(r, c) += static_cast<float>(b.amplitude * std::exp(-d2 / (2 * b.sigma * b.sigma)));
      }
  }
  return frame;
}

TEST_CASE("template registration options are checked", "[core][template_registration]") {
  std::string error;
  REQUIRE(TemplateRegistrationOptions{}.Check(&error));
  TemplateRegistrationOptions o;
  SECTION("radius 0") { o.search_radius_px = 0; }
  SECTION("tolerance 0") { o.tolerance_px = 0; }
  SECTION("no iterations") { o.max_iterations = 0; }
  SECTION("negative overlap passes") { o.overlap_iterations = -1; }
  SECTION("bad weight") { o.weight.cutoff_cycles_per_px = 2; }
  REQUIRE_FALSE(o.Check(&error));
  REQUIRE_FALSE(error.empty());
  REQUIRE_THROWS_AS(TemplateRegistrar(Shape{32, 32}, o), std::invalid_argument);
}

TEST_CASE("misuse of the template registrar throws", "[core][template_registration]") {
  TemplateRegistrar registrar(Shape{32, 32}, TemplateRegistrationOptions{});
  Frame frame(Shape{32, 32}), wrong(Shape{32, 31});
  REQUIRE_FALSE(registrar.has_template());
  REQUIRE_THROWS_AS(registrar.Register(frame.view(), {0, 0}, nullptr), std::invalid_argument);
  REQUIRE_THROWS_AS(registrar.SetTemplate(wrong.view()), std::invalid_argument);
  registrar.SetTemplate(frame.view());
  REQUIRE_THROWS_AS(registrar.Register(wrong.view(), {0, 0}, nullptr), std::invalid_argument);
}

TEST_CASE("a frame registers to its own template at zero with height 1",
          "[core][template_registration]") {
  const Shape shape{128, 160};
  const Frame frame = Render(shape, RandomBlobs(shape, 120, 1), {0, 0});
  TemplateRegistrationReport report;
  const Shift s = RegisterToTemplate(frame.view(), frame.view(), {0.4, -0.3},
                                     TemplateRegistrationOptions{}, &report);
  REQUIRE_THAT(s.x, WithinAbs(0.0, 1e-3));
  REQUIRE_THAT(s.y, WithinAbs(0.0, 1e-3));
  REQUIRE(report.peak_in_window);
  REQUIRE(report.converged);
  REQUIRE_THAT(report.height, WithinAbs(1.0, 1e-4));
}

TEST_CASE("fractional shifts against a template are recovered to 0.02 px",
          "[core][template_registration]") {
  const Shape shape = GENERATE(Shape{256, 256}, Shape{192, 256});
  const std::vector<Blob> blobs = RandomBlobs(shape, 260, 2);
  const Frame templ = Render(shape, blobs, {0, 0});
  TemplateRegistrar registrar(shape, TemplateRegistrationOptions{});
  registrar.SetTemplate(templ.view());
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> big(-40, 40), small(-1.5, 1.5);
  double max_error = 0;
  for (int t = 0; t < 6; ++t) {
    const Shift truth{big(rng), big(rng)};
    const Shift guess = truth + Shift{small(rng), small(rng)};  // e.g. from the pair solve
    const Frame frame = Render(shape, blobs, truth);
    TemplateRegistrationReport report;
    const Shift s = registrar.Register(frame.view(), guess, &report);
    CAPTURE(shape, truth, guess, s, report.iterations, report.overlap_iterations);
    REQUIRE(report.peak_in_window);
    REQUIRE(report.converged);
    REQUIRE_THAT(s.x, WithinAbs(truth.x, 0.02));
    REQUIRE_THAT(s.y, WithinAbs(truth.y, 0.02));
    max_error = std::max(max_error, (s - truth).Norm());
  }
  CAPTURE(max_error);
  REQUIRE(max_error < 0.02);
}

TEST_CASE("without overlap passes the window bias grows with the shift",
          "[core][template_registration]") {
  // Documents why the overlap passes exist: one fixed-window pass is biased.
  const Shape shape{256, 256};
  const std::vector<Blob> blobs = RandomBlobs(shape, 260, 3);
  const Frame templ = Render(shape, blobs, {0, 0});
  const Shift truth{35.37, -28.81};
  const Frame frame = Render(shape, blobs, truth);
  TemplateRegistrationOptions options;
  options.overlap_iterations = 0;
  const double e_single = (RegisterToTemplate(frame.view(), templ.view(), truth, options, nullptr) - truth).Norm();
  options.overlap_iterations = 2;
  const double e_overlap = (RegisterToTemplate(frame.view(), templ.view(), truth, options, nullptr) - truth).Norm();
  CAPTURE(e_single, e_overlap);
  REQUIRE(e_overlap < 0.02);
  REQUIRE(e_overlap < e_single);
}

TEST_CASE("the search radius keeps registration on the guessed lattice translate",
          "[core][template_registration]") {
  const Shape shape{256, 256};
  const double period = 16;
  const std::vector<Blob> blobs = RandomBlobs(shape, 30, 4);
  const Frame templ = Render(shape, blobs, {0, 0}, period);
  const Shift truth{2.3, -1.6};
  const Frame frame = Render(shape, blobs, truth, period);
  TemplateRegistrationOptions options;
  options.search_radius_px = 3;
  TemplateRegistrationReport report;
  const Shift near = RegisterToTemplate(frame.view(), templ.view(), truth + Shift{1.0, -1.0},
                                        options, &report);
  REQUIRE(report.peak_in_window);
  REQUIRE_THAT(near.x, WithinAbs(truth.x, 0.02));
  REQUIRE_THAT(near.y, WithinAbs(truth.y, 0.02));
  // Guessing a neighbouring translate stays there (the window prevents the
  // jump; the lattice dominates the correlation locally).
  const Shift hop = truth + Shift{period, 0};
  const Shift hopped = RegisterToTemplate(frame.view(), templ.view(), hop, options, nullptr);
  REQUIRE((hopped - hop).Norm() < 1.0);
}

TEST_CASE("a peak within the search radius of a fractional guess is found when its nearest pixel is beyond it",
          "[core][template_registration]") {
  // The precision stage's radius, 1.5 px. The peak at y = 1.9 is 1.45 px from
  // the guess 0.45, but its nearest pixel (2) is 1.55 px away: a window of
  // the pixels within the radius (-1..1) held no local maximum.
  const Shape shape{256, 256};
  const std::vector<Blob> blobs = RandomBlobs(shape, 260, 5);
  const Frame templ = Render(shape, blobs, {0, 0});
  const Shift truth{0.1, 1.9};
  const Frame frame = Render(shape, blobs, truth);
  TemplateRegistrationOptions options;
  options.search_radius_px = 1.5;
  TemplateRegistrationReport report;
  const Shift s = RegisterToTemplate(frame.view(), templ.view(), Shift{0.1, 0.45}, options, &report);
  CAPTURE(s);
  REQUIRE(report.peak_in_window);
  REQUIRE_THAT(s.x, WithinAbs(truth.x, 0.02));
  REQUIRE_THAT(s.y, WithinAbs(truth.y, 0.02));
}

TEST_CASE("the band-grid registration agrees for a summed and an FFT-computed pixel map",
          "[core][template_registration]") {
  // The precision stage's weight: W = 0 beyond 0.25 cycles/px, so the product
  // lives on a half-size band grid. A narrow search window sums the pixel map
  // directly from the band, a wide one inverse-transforms the zero-padded
  // band; both must start Newton from the same peak and end at the same shift.
  const Shape shape{256, 192};
  const std::vector<Blob> blobs = RandomBlobs(shape, 200, 6);
  const Frame templ = Render(shape, blobs, {0, 0});
  const Shift truth{0.63, -0.41};
  const Frame frame = Render(shape, blobs, truth);
  TemplateRegistrationOptions options;
  options.weight.type = FourierWeightType::kGaussian;
  options.weight.sigma_cycles_per_px = 0.08;
  options.weight.cutoff_cycles_per_px = 0.25;
  options.overlap_iterations = 0;
  options.search_radius_px = 1.5;
  TemplateRegistrar narrow(shape, options);
  REQUIRE(narrow.band() == Shape{128, 96});
  options.search_radius_px = 12;
  TemplateRegistrar wide(shape, options);
  narrow.SetTemplate(templ.view());
  wide.SetTemplate(templ.view());
  TemplateRegistrationReport narrow_report, wide_report;
  const Shift a = narrow.Register(frame.view(), {0, 0}, &narrow_report);
  const Shift b = wide.Register(frame.view(), {0, 0}, &wide_report);
  CAPTURE(a, b, truth);
  REQUIRE(narrow_report.peak_in_window);
  REQUIRE(wide_report.peak_in_window);
  REQUIRE(narrow_report.converged);
  REQUIRE_THAT(a.x, WithinAbs(b.x, 1e-6));
  REQUIRE_THAT(a.y, WithinAbs(b.y, 1e-6));
  REQUIRE_THAT(narrow_report.height, WithinAbs(wide_report.height, 1e-9));
  REQUIRE_THAT(a.x, WithinAbs(truth.x, 0.05));
  REQUIRE_THAT(a.y, WithinAbs(truth.y, 0.05));
}

TEST_CASE("a weight without a band limit keeps the full grid", "[core][template_registration]") {
  TemplateRegistrationOptions options;
  options.weight.type = FourierWeightType::kNone;
  REQUIRE(TemplateRegistrar(Shape{64, 80}, options).band() == Shape{64, 80});
}

}  // namespace
}  // namespace livealign
