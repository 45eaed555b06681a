#include "core/hop_test.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>

namespace livealign {
namespace {

const Lattice kLattice = Lattice::Reduced({9.0, 1.5}, {-3.2, 8.6});

TEST_CASE("a residual near a non-zero lattice vector is a hop by that vector", "[core][hop_test]") {
  const HopTest hops(kLattice, HopTolerances{});
  const double spacing = kLattice.ShortestSpacing();
  CHECK_THAT(hops.hop_px(), Catch::Matchers::WithinAbs(0.25 * spacing, 1e-12));
  for (int na = -2; na <= 2; ++na) {
    for (int nb = -2; nb <= 2; ++nb) {
      if (na == 0 && nb == 0) continue;
      CAPTURE(na, nb);
      const Shift v = kLattice.Vector(na, nb);
      const Shift noise{0.1 * spacing, -0.1 * spacing};  // 0.14 spacings off
      const auto hop = hops.Hop(v + noise);
      REQUIRE(hop.has_value());
      CHECK(hop->na == na);
      CHECK(hop->nb == nb);
      CHECK_THAT((hop->vector - v).Norm(), Catch::Matchers::WithinAbs(0, 1e-12));
      // Beyond the tolerance (0.3 spacings off) it is no hop, just wrong.
      CHECK_FALSE(hops.Hop(v + Shift{0.3 * spacing, 0}).has_value());
      CHECK_FALSE(hops.WithinHop(v));
    }
  }
}

TEST_CASE("a small residual is no hop but within the hop tolerance of zero", "[core][hop_test]") {
  const HopTest hops(kLattice, HopTolerances{});
  const double spacing = kLattice.ShortestSpacing();
  CHECK_FALSE(hops.Hop(Shift{}).has_value());
  CHECK_FALSE(hops.Hop(Shift{0.2 * spacing, 0}).has_value());
  CHECK(hops.WithinHop(Shift{0.2 * spacing, 0}));
  CHECK_FALSE(hops.WithinHop(Shift{0.3 * spacing, 0}));
  // Half-way between sites is neither.
  const Shift half = kLattice.Vector(1, 0) * 0.5;
  CHECK_FALSE(hops.Hop(half).has_value());
  CHECK_FALSE(hops.WithinHop(half));
}

TEST_CASE("the coarse test accepts any site, zero included, within the wider tolerance", "[core][hop_test]") {
  const HopTest hops(kLattice, HopTolerances{0.25, 0.3});
  const double spacing = kLattice.ShortestSpacing();
  const Shift off{0.28 * spacing, 0};  // within coarse (0.3), beyond hop (0.25)
  const auto zero = hops.CoarseSite(off);
  REQUIRE(zero.has_value());
  CHECK(zero->IsZero());
  const auto site = hops.CoarseSite(kLattice.Vector(0, 1) + off);
  REQUIRE(site.has_value());
  CHECK(site->na == 0);
  CHECK(site->nb == 1);
  CHECK_FALSE(hops.Hop(kLattice.Vector(0, 1) + off).has_value());
  CHECK_FALSE(hops.CoarseSite(kLattice.Vector(1, 0) * 0.5).has_value());
}

TEST_CASE("after a gap a site within the gap tolerance is taken only when clearly the nearest",
          "[core][hop_test]") {
  const double spacing = kLattice.ShortestSpacing();
  // Towards the nearest neighbouring site, the worst direction for clarity.
  const Shift shortest = kLattice.a.Norm() <= kLattice.b.Norm() ? kLattice.a : kLattice.b;
  REQUIRE(shortest.Norm() == Approx(spacing));
  const Shift off = shortest * (0.35 * spacing / shortest.Norm());  // beyond hop (0.25), within gap (0.4)
  const HopTest hops(kLattice, HopTolerances{});
  CHECK_THAT(hops.gap_px(), Catch::Matchers::WithinAbs(0.4 * spacing, 1e-12));
  CHECK_FALSE(hops.Hop(kLattice.Vector(0, 1) + off).has_value());
  const auto site = hops.GapSite(kLattice.Vector(0, 1) + off);
  REQUIRE(site.has_value());
  CHECK(site->na == 0);
  CHECK(site->nb == 1);
  const auto zero = hops.GapSite(off);  // the prediction's own site, zero
  REQUIRE(zero.has_value());
  CHECK(zero->IsZero());
  // Beyond the gap tolerance: no site.
  CHECK_FALSE(hops.GapSite(off * (0.45 / 0.35)).has_value());
  // 0.35 against 0.65 of a spacing to the next site is a ratio of 0.54:
  // clear at the default 0.6, not at 0.5.
  const HopTest strict(kLattice, HopTolerances{0.25, 0.3, 0.4, 0.5});
  CHECK_FALSE(strict.GapSite(off).has_value());
  CHECK(strict.GapSite(off * (0.3 / 0.35)).has_value());
  CHECK_THROWS_AS(HopTest(kLattice, HopTolerances{0.25, 0.3, 0.5, 0.6}), std::invalid_argument);
  CHECK_THROWS_AS(HopTest(kLattice, HopTolerances{0.25, 0.3, 0.4, 0.0}), std::invalid_argument);
}

TEST_CASE("the hop test reduces the basis and rejects tolerances that are not unique",
          "[core][hop_test]") {
  // A skewed basis of the same lattice gives the same test.
  const HopTest skewed(Lattice{kLattice.a, kLattice.b + kLattice.a * 3}, HopTolerances{});
  CHECK_THAT(skewed.lattice().ShortestSpacing(),
             Catch::Matchers::WithinAbs(kLattice.ShortestSpacing(), 1e-9));
  const auto hop = skewed.Hop(kLattice.Vector(0, 1));
  REQUIRE(hop.has_value());
  CHECK_THAT((hop->vector - kLattice.Vector(0, 1)).Norm(), Catch::Matchers::WithinAbs(0, 1e-9));
  CHECK_THROWS_AS(HopTest(kLattice, HopTolerances{0.5, 0.3}), std::invalid_argument);
  CHECK_THROWS_AS(HopTest(kLattice, HopTolerances{0.25, 0.0}), std::invalid_argument);
  CHECK_THROWS_AS(HopTest(Lattice{{1, 0}, {2, 0}}, HopTolerances{}), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
