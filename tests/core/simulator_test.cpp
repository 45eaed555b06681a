#include "core/simulator.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

double Mean(FrameView frame) {
  double sum = 0;
  for (int r = 0; r < frame.rows(); ++r)
    for (int c = 0; c < frame.cols(); ++c) sum += frame.at(r, c);
  return sum / static_cast<double>(frame.shape().Pixels());
}

// Centroid of the intensity above the frame minimum (the flat background).
Shift BrightCentroid(FrameView frame) {
  float floor = frame.at(0, 0);
  for (int r = 0; r < frame.rows(); ++r)
    for (int c = 0; c < frame.cols(); ++c) floor = std::min(floor, frame.at(r, c));
  double sx = 0, sy = 0, sw = 0;
  for (int r = 0; r < frame.rows(); ++r)
    for (int c = 0; c < frame.cols(); ++c) {
      const double w = frame.at(r, c) - floor;
      sx += w * c, sy += w * r, sw += w;
    }
  return {sx / sw, sy / sw};
}

// A specimen that is one broad blob and nothing else.
SimulatorOptions SingleBlobOptions() {
  SimulatorOptions options;
  options.shape = {128, 128};
  options.a_site_intensity = options.b_site_intensity = 0;
  options.vacancy_fraction = 0;
  options.thickness_gradient = 0;
  options.background = 1e-3;  // a frame with the blob out of view must not be dark
  options.num_blobs = 1;
  options.blob_sigma_min_px = options.blob_sigma_max_px = 4;
  options.poisson_noise = false;
  options.initial_velocity_px_per_frame = {0.73, -0.41};
  options.random_acceleration_px = 0.2;
  return options;
}

TEST_CASE("a single bright blob moves by exactly the true shift", "[core][simulator]") {
  SimulatorOptions options = SingleBlobOptions();
  // Try seeds until the blob sits well inside frame 0 (its position is random
  // over the field of view +- 25 %).
  for (std::uint64_t seed = 1; seed < 100; ++seed) {
    Simulator microscope(options, seed);
    const Frame f0 = microscope.NoiseFreeFrame(0);
    const auto [lo, hi] = std::minmax_element(f0.pixels().begin(), f0.pixels().end());
    if (*hi < 100 * *lo) continue;  // blob out of view: flat frame
    const Shift c0 = BrightCentroid(f0);
    if (c0.x < 40 || c0.x > 88 || c0.y < 40 || c0.y > 88) continue;
    REQUIRE(microscope.TrueShift(0) == Shift{0, 0});
    for (int i = 1; i <= 8; ++i) {
      const Shift s = microscope.TrueShift(i);
      const Shift moved = BrightCentroid(microscope.NoiseFreeFrame(i)) - c0;
      CAPTURE(i, s, moved);
      REQUIRE_THAT(moved.x, WithinAbs(s.x, 1e-3));
      REQUIRE_THAT(moved.y, WithinAbs(s.y, 1e-3));
    }
    return;
  }
  FAIL("no seed put the blob inside the frame");
}

TEST_CASE("an integer stage jump translates the noise-free frame by whole pixels",
          "[core][simulator]") {
  SimulatorOptions options;
  options.shape = {96, 112};
  options.initial_velocity_px_per_frame = {0, 0};
  options.random_acceleration_px = 0;
  options.jumps = {{2, Shift{3, -5}}};
  Simulator microscope(options, 11);
  REQUIRE(microscope.TrueShift(1) == Shift{0, 0});
  REQUIRE(microscope.TrueShift(2) == (Shift{3, -5}));
  const Frame f0 = microscope.NoiseFreeFrame(0);
  const Frame f2 = microscope.NoiseFreeFrame(2);
  // Frame 2 at p shows frame 0 at p - s.
  for (int r = 0; r < 96 - 5; ++r)
    for (int c = 3; c < 112; ++c) REQUIRE_THAT(f2.at(r, c), WithinAbs(f0.at(r + 5, c - 3), 1e-5));
}

TEST_CASE("drift models combine: linear, stop and jumps", "[core][simulator]") {
  SimulatorOptions options;
  options.shape = {32, 32};
  options.initial_velocity_px_per_frame = {0.5, -0.25};
  options.random_acceleration_px = 0;
  options.jumps = {{4, Shift{10, 0}}};
  options.drift_stops_at_frame = 6;
  Simulator microscope(options, 3);
  for (int i = 0; i <= 6; ++i) {
    const Shift want = Shift{0.5, -0.25} * i + (i >= 4 ? Shift{10, 0} : Shift{0, 0});
    CAPTURE(i);
    REQUIRE_THAT(microscope.TrueShift(i).x, WithinAbs(want.x, 1e-12));
    REQUIRE_THAT(microscope.TrueShift(i).y, WithinAbs(want.y, 1e-12));
  }
  REQUIRE(microscope.TrueShift(20) == microscope.TrueShift(6));
  REQUIRE_THAT(microscope.Timestamp(4), WithinAbs(4 * options.frame_time_s, 1e-12));
}

TEST_CASE("frame mean matches the requested dose", "[core][simulator]") {
  const double dose = GENERATE(0.2, 0.08, 5.0);
  CAPTURE(dose);
  SimulatorOptions options;
  options.dose_counts_per_px = dose;
  Simulator microscope(options, 5);
  REQUIRE_THAT(Mean(microscope.NoiseFreeFrame(0)), WithinRel(dose, 1e-4));
  const Frame f0 = microscope.NextFrame();
  // Poisson: the mean of 512^2 pixels has relative sd 1 / sqrt(dose * 262144).
  const double tol = 5.0 / std::sqrt(dose * 512.0 * 512.0);
  REQUIRE_THAT(Mean(f0), WithinRel(dose, tol));
  for (float v : f0.pixels()) REQUIRE(v == std::floor(v));  // counts are integers
  // Later frames keep the same beam current: close to the dose.
  REQUIRE_THAT(Mean(microscope.NoiseFreeFrame(10)), WithinRel(dose, 0.05));
}

TEST_CASE("the same seed gives the same series, another seed a different one",
          "[core][simulator]") {
  SimulatorOptions options;
  options.shape = {64, 80};
  const SimulatedSeries a = Simulate(options, 4, 42);
  const SimulatedSeries b = Simulate(options, 4, 42);
  const SimulatedSeries c = Simulate(options, 4, 43);
  REQUIRE(a.frames.size() == 4);
  for (int i = 0; i < 4; ++i) {
    REQUIRE(a.frames[i].pixels() == b.frames[i].pixels());
    REQUIRE(a.true_shifts[i] == b.true_shifts[i]);
    REQUIRE(a.frames[i].header().index == i);
  }
  REQUIRE(a.frames[1].pixels() != c.frames[1].pixels());
  REQUIRE(a.true_shifts[3] != c.true_shifts[3]);

  // Random access gives the same frame as sequential NextFrame().
  Simulator microscope(options, 42);
  REQUIRE(microscope.NoisyFrame(3).pixels() == a.frames[3].pixels());
}

TEST_CASE("lattice vectors have the requested spacing and geometry", "[core][simulator]") {
  SimulatorOptions options;
  options.lattice_spacing_px = 20;
  SECTION("perovskite is square") {
    options.lattice = SpecimenLattice::kPerovskite;
    Simulator microscope(options, 1);
    REQUIRE_THAT(microscope.lattice_a_px().Norm(), WithinAbs(20, 1e-9));
    const Shift a = microscope.lattice_a_px(), b = microscope.lattice_b_px();
    REQUIRE_THAT(a.x * b.x + a.y * b.y, WithinAbs(0, 1e-9));
  }
  SECTION("hexagonal is 60 degrees") {
    options.lattice = SpecimenLattice::kHexagonal;
    Simulator microscope(options, 1);
    const Shift a = microscope.lattice_a_px(), b = microscope.lattice_b_px();
    REQUIRE_THAT(b.Norm(), WithinAbs(20, 1e-9));
    REQUIRE_THAT(a.x * b.x + a.y * b.y, WithinAbs(200, 1e-9));
  }
}

TEST_CASE("a perfect lattice is periodic: a lattice-vector shift leaves the frame unchanged",
          "[core][simulator]") {
  SimulatorOptions options;
  options.shape = {64, 64};
  options.perfect_lattice = true;
  options.rotation_deg = 0;
  options.initial_velocity_px_per_frame = {0, 0};
  options.random_acceleration_px = 0;
  options.jumps = {{1, Shift{16, 0}}};
  Simulator microscope(options, 9);
  const Frame f0 = microscope.NoiseFreeFrame(0), f1 = microscope.NoiseFreeFrame(1);
  for (std::size_t k = 0; k < f0.pixels().size(); ++k)
    REQUIRE_THAT(f1.pixels()[k], WithinAbs(f0.pixels()[k], 1e-6));

  SECTION("but not with vacancies and blobs") {
    options.perfect_lattice = false;
    Simulator dirty(options, 9);
    const Frame d0 = dirty.NoiseFreeFrame(0), d1 = dirty.NoiseFreeFrame(1);
    double max_diff = 0;
    for (std::size_t k = 0; k < d0.pixels().size(); ++k)
      max_diff = std::max(max_diff, double(std::fabs(d1.pixels()[k] - d0.pixels()[k])));
    REQUIRE(max_diff > 0.01);
  }
}

TEST_CASE("the Cramer-Rao bound falls as one over the square root of dose", "[core][simulator]") {
  SimulatorOptions options;
  options.shape = {128, 128};
  options.dose_counts_per_px = 0.2;
  const ShiftPrecisionBound at_02 = CramerRaoBound(Simulator(options, 1).NoiseFreeFrame(0));
  options.dose_counts_per_px = 0.05;
  const ShiftPrecisionBound at_005 = CramerRaoBound(Simulator(options, 1).NoiseFreeFrame(0));
  CAPTURE(at_02.sigma_x_px, at_02.sigma_y_px);
  REQUIRE(at_02.sigma_x_px > 0);
  REQUIRE(std::isfinite(at_02.sigma_x_px));
  REQUIRE_THAT(at_005.sigma_x_px / at_02.sigma_x_px, WithinRel(2.0, 1e-3));
  REQUIRE_THAT(at_005.sigma_y_px / at_02.sigma_y_px, WithinRel(2.0, 1e-3));

  SECTION("and matches the analytic bound of one Gaussian spot") {
    // lambda = N / (2 pi s^2) exp(-r^2 / 2 s^2) on a zero background:
    // Fisher information N / s^2 per axis, so sigma = s / sqrt(N).
    const double s = 3.0, total = 1000.0;
    Frame spot(Shape{64, 64});
    for (int r = 0; r < 64; ++r)
      for (int c = 0; c < 64; ++c)
        spot.at(r, c) = static_cast<float>(total / (2 * M_PI * s * s) *
                                           std::exp(-((r - 31.7) * (r - 31.7) + (c - 32.2) * (c - 32.2)) / (2 * s * s)));
    const ShiftPrecisionBound bound = CramerRaoBound(spot);
    REQUIRE_THAT(bound.sigma_x_px, WithinRel(s / std::sqrt(total), 0.01));
    REQUIRE_THAT(bound.sigma_y_px, WithinRel(s / std::sqrt(total), 0.01));
  }
  SECTION("a flat frame carries no information") {
    Frame flat(Shape{16, 16}, std::vector<float>(256, 1.0f));
    REQUIRE(std::isinf(CramerRaoBound(flat).sigma_x_px));
  }
}

TEST_CASE("bad simulator options are refused", "[core][simulator]") {
  SimulatorOptions options;
  std::string error;
  REQUIRE(options.Check(&error));
  options.dose_counts_per_px = 0;
  REQUIRE_FALSE(options.Check(&error));
  REQUIRE_FALSE(error.empty());
  REQUIRE_THROWS_AS(Simulator(options, 1), std::invalid_argument);
  options = SimulatorOptions();
  options.jumps = {{0, Shift{1, 1}}};
  REQUIRE_FALSE(options.Check(&error));
  REQUIRE_THROWS_AS(Simulate(SimulatorOptions(), -1, 1), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
