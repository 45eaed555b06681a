#include "core/lattice.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

Shift Rotated(double length, double degrees) {
  const double t = degrees * M_PI / 180.0;
  return {length * std::cos(t), length * std::sin(t)};
}

// Sum of Gaussian "atoms" on the lattice sites origin + na a + nb b, plus
// Gaussian pixel noise of standard deviation noise_sigma.
Frame LatticeImage(Shape shape, Shift a, Shift b, Shift origin, double atom_sigma,
                   double noise_sigma, unsigned seed) {
  Frame frame(shape);
  const double reach = 4 * atom_sigma;
  const int n = static_cast<int>(2 * (shape.rows + shape.cols) / std::min(a.Norm(), b.Norm()));
  for (int na = -n; na <= n; ++na) {
    for (int nb = -n; nb <= n; ++nb) {
      const Shift p = origin + a * na + b * nb;
      if (p.x < -reach || p.y < -reach || p.x > shape.cols + reach || p.y > shape.rows + reach) continue;
      for (int r = std::max(0, int(p.y - reach)); r < std::min(shape.rows, int(p.y + reach) + 1); ++r) {
        for (int c = std::max(0, int(p.x - reach)); c < std::min(shape.cols, int(p.x + reach) + 1); ++c) {
          const double d2 = (c - p.x) * (c - p.x) + (r - p.y) * (r - p.y);
          frame.at(r, c) += static_cast<float>(std::exp(-d2 / (2 * atom_sigma * atom_sigma)));
        }
      }
    }
  }
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, noise_sigma);
  for (int r = 0; r < shape.rows; ++r)
    for (int c = 0; c < shape.cols; ++c) frame.at(r, c) += static_cast<float>(noise(rng));
  return frame;
}

// Every basis vector of `got` lies within rel_tol of a vector of `want` and
// vice versa, and the cell areas agree: the two bases span the same lattice.
void RequireSameLattice(const Lattice& got, const Lattice& want, double rel_tol) {
  CAPTURE(got, want);
  for (Shift v : {got.a, got.b}) {
    const LatticeVector nearest = want.NearestLatticeVector(v);
    REQUIRE_FALSE(nearest.IsZero());
    REQUIRE((v - nearest.vector).Norm() <= rel_tol * nearest.vector.Norm());
  }
  for (Shift v : {want.a, want.b}) {
    const LatticeVector nearest = got.NearestLatticeVector(v);
    REQUIRE((v - nearest.vector).Norm() <= rel_tol * v.Norm());
  }
  REQUIRE_THAT(got.CellArea(), WithinRel(want.CellArea(), 2 * rel_tol));
}

TEST_CASE("Gauss reduction finds the shortest basis of a skewed lattice", "[core][lattice]") {
  const Shift a{10, 0}, b{3, 9};
  const Lattice lattice = Lattice::Reduced(a * 3 + b, a * 5 + b * 2);  // det 1: same lattice
  REQUIRE_THAT(lattice.ShortestSpacing(), WithinAbs(std::hypot(3.0, 9.0), 1e-9));
  REQUIRE_THAT(std::max(lattice.a.Norm(), lattice.b.Norm()), WithinAbs(10.0, 1e-9));
  REQUIRE_THAT(lattice.CellArea(), WithinAbs(90.0, 1e-9));
  REQUIRE_THROWS_AS(Lattice::Reduced({1, 1}, {2, 2}), std::invalid_argument);
  REQUIRE_THROWS_AS(Lattice::Reduced({0, 0}, {2, 2}), std::invalid_argument);
}

TEST_CASE("nearest lattice vector of random points is the closest site", "[core][lattice]") {
  const Lattice lattice = Lattice::Reduced(Rotated(8, 20), Rotated(8, 80));
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> uniform(-40, 40);
  for (int trial = 0; trial < 200; ++trial) {
    const Shift v{uniform(rng), uniform(rng)};
    const LatticeVector nearest = lattice.NearestLatticeVector(v);
    REQUIRE_THAT((lattice.Vector(nearest.na, nearest.nb) - nearest.vector).Norm(), WithinAbs(0, 1e-12));
    for (int na = -8; na <= 8; ++na)
      for (int nb = -8; nb <= 8; ++nb)
        REQUIRE((v - nearest.vector).Norm() <= (v - lattice.Vector(na, nb)).Norm() + 1e-9);
  }
}

TEST_CASE("EstimateLattice recovers rotated lattices on a non-square frame", "[core][lattice]") {
  const Shape shape{192, 256};
  Shift a, b;
  SECTION("hexagonal") {
    a = Rotated(9.0, 17.0);
    b = Rotated(9.0, 77.0);
  }
  SECTION("square") {
    a = Rotated(11.5, -8.0);
    b = Rotated(11.5, 82.0);
  }
  SECTION("oblique, long cell") {
    a = Rotated(7.0, 3.0);
    b = Rotated(16.0, 71.0);
  }
  const Lattice want = Lattice::Reduced(a, b);
  const Frame image = LatticeImage(shape, a, b, {3.3, 5.1}, 1.4, 0.3, 11);
  const LatticeEstimate estimate = EstimateLattice(image.view(), {});
  CAPTURE(estimate.message, estimate.indexed_peaks);
  REQUIRE(estimate.found);
  RequireSameLattice(estimate.lattice, want, 0.01);
  REQUIRE(estimate.indexed_peaks >= 6);
  REQUIRE(estimate.significance > 30);
  int indexed = 0;
  for (const ReciprocalPeak& peak : estimate.peaks) indexed += peak.indexed;
  REQUIRE(indexed == estimate.indexed_peaks);
}

TEST_CASE("EstimateLattice recovers the lattice of a region with prime sides (via its FFT-friendly crop)",
          "[core][lattice]") {
  // 197 and 251 are prime: a mosaic's best-covered region can be any size.
  const Shape shape{197, 251};
  const Shift a = Rotated(9.5, 12.0), b = Rotated(9.5, 72.0);
  const Lattice want = Lattice::Reduced(a, b);
  const Frame image = LatticeImage(shape, a, b, {1.7, 4.2}, 1.4, 0.3, 13);
  const LatticeEstimate estimate = EstimateLattice(image.view(), {});
  CAPTURE(estimate.message, estimate.indexed_peaks);
  REQUIRE(estimate.found);
  RequireSameLattice(estimate.lattice, want, 0.01);
  REQUIRE(estimate.indexed_peaks >= 6);
}

TEST_CASE("EstimateLattice finds no lattice in white noise or in isolated blobs", "[core][lattice]") {
  const Shape shape{160, 224};
  Frame image(shape);
  std::mt19937 rng(5);
  SECTION("white noise") {
    std::normal_distribution<double> noise(10.0, 2.0);
    for (int r = 0; r < shape.rows; ++r)
      for (int c = 0; c < shape.cols; ++c) image.at(r, c) = static_cast<float>(noise(rng));
  }
  SECTION("random blobs with noise") {
    std::uniform_real_distribution<double> x(0, shape.cols), y(0, shape.rows);
    std::normal_distribution<double> noise(0.0, 0.05);
    for (int blob = 0; blob < 12; ++blob) {
      const double bx = x(rng), by = y(rng), s = 3 + blob % 5;
      for (int r = 0; r < shape.rows; ++r)
        for (int c = 0; c < shape.cols; ++c)
          image.at(r, c) += static_cast<float>(
              std::exp(-((c - bx) * (c - bx) + (r - by) * (r - by)) / (2 * s * s)));
    }
    for (int r = 0; r < shape.rows; ++r)
      for (int c = 0; c < shape.cols; ++c) image.at(r, c) += static_cast<float>(noise(rng));
  }
  SECTION("flat image") {}
  const LatticeEstimate estimate = EstimateLattice(image.view(), {});
  CAPTURE(estimate.message, estimate.indexed_peaks, estimate.peaks.size());
  REQUIRE_FALSE(estimate.found);
  REQUIRE_FALSE(estimate.message.empty());
}

TEST_CASE("EstimateLattice rejects tiny images and bad options", "[core][lattice]") {
  Frame tiny(Shape{8, 8});
  REQUIRE_THROWS_AS(EstimateLattice(tiny.view(), {}), std::invalid_argument);
  LatticeEstimateOptions options;
  options.min_indexed_peaks = 2;
  std::string error;
  REQUIRE_FALSE(options.Check(&error));
  REQUIRE_FALSE(error.empty());
  Frame image(Shape{32, 32});
  REQUIRE_THROWS_AS(EstimateLattice(image.view(), options), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
