#include "core/temporal_check.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

const Lattice kLattice = Lattice::Reduced({9.0, 1.5}, {-3.2, 8.6});
const HopTest kHops(kLattice, HopTolerances{});

std::vector<Shift> SmoothDrift(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.05);
  std::vector<Shift> s;
  for (int k = 0; k < n; ++k) {
    s.push_back(Shift{0.6 * k + 2 * std::sin(0.1 * k) + noise(rng), -0.3 * k + noise(rng)});
  }
  return s;
}

TEST_CASE("a frame hopped by a lattice vector is reported as a spike", "[core][temporal_check]") {
  auto shifts = SmoothDrift(40, 1);
  shifts[17] += kLattice.Vector(1, -1);
  std::vector<double> timestamps;
  for (int k = 0; k < 40; ++k) timestamps.push_back(0.5 * k + (k > 20 ? 0.7 : 0.0));  // uneven gap
  const TemporalCheckReport report = TemporalCheck(shifts, timestamps, kHops);
  REQUIRE(report.spikes.size() == 1);
  REQUIRE(report.spikes[0].frame == 17);
  REQUIRE(report.spikes[0].is_lattice_vector);
  REQUIRE(report.spikes[0].lattice_vector.na == 1);
  REQUIRE(report.spikes[0].lattice_vector.nb == -1);
}

TEST_CASE("a real stage step is not a spike", "[core][temporal_check]") {
  auto shifts = SmoothDrift(40, 2);
  // A step of exactly two lattice vectors would look like a hop of one vector
  // at the frames on either side if only the second difference were used.
  const Shift jump = kLattice.Vector(2, 0);
  for (int k = 25; k < 40; ++k) shifts[k] += jump;
  const TemporalCheckReport report = TemporalCheck(shifts, {}, kHops);
  REQUIRE(report.spikes.empty());
}

TEST_CASE("spikes that are not lattice vectors are ignored with a lattice", "[core][temporal_check]") {
  auto shifts = SmoothDrift(30, 3);
  shifts[10] += kLattice.Vector(1, 0) * 0.5;  // half a cell: not a hop
  REQUIRE(TemporalCheck(shifts, {}, kHops).spikes.empty());
  SECTION("without a lattice it is a plain spike") {
    const TemporalCheckReport report = TemporalCheck(shifts, {}, std::nullopt);
    REQUIRE(report.spikes.size() == 1);
    REQUIRE(report.spikes[0].frame == 10);
    REQUIRE_FALSE(report.spikes[0].is_lattice_vector);
  }
}

TEST_CASE("smooth drift gives an empty report; misuse throws", "[core][temporal_check]") {
  const TemporalCheckReport report = TemporalCheck(SmoothDrift(50, 4), {}, kHops);
  REQUIRE(report.spikes.empty());
  REQUIRE(TemporalCheck({Shift{}, Shift{1, 1}}, {}, kHops).spikes.empty());
  REQUIRE_THROWS_AS(TemporalCheck(SmoothDrift(5, 5), {1.0, 2.0}, kHops), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
