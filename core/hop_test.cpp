#include "core/hop_test.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace livealign {
namespace {

// Shift::Norm() uses std::hypot, several times slower; the solver asks this
// for every pair in every iteration, and shifts never approach overflow.
double Length(Shift v) { return std::sqrt(v.x * v.x + v.y * v.y); }

}  // namespace

HopTest::HopTest(const Lattice& lattice, HopTolerances tolerances)
    : lattice_(Lattice::Reduced(lattice.a, lattice.b)), tolerances_(tolerances) {
  if (!(tolerances.hop > 0 && tolerances.hop < 0.5)) {
    throw std::invalid_argument("HopTest: the hop tolerance must be in (0, 0.5)");
  }
  if (!(tolerances.coarse > 0 && tolerances.coarse < 0.5)) {
    throw std::invalid_argument("HopTest: the coarse hop tolerance must be in (0, 0.5)");
  }
  if (!(tolerances.gap > 0 && tolerances.gap < 0.5)) {
    throw std::invalid_argument("HopTest: the gap hop tolerance must be in (0, 0.5)");
  }
  if (!(tolerances.gap_clarity > 0 && tolerances.gap_clarity <= 1)) {
    throw std::invalid_argument("HopTest: the gap clarity must be in (0, 1]");
  }
  const double spacing = lattice_.ShortestSpacing();
  hop_px_ = tolerances.hop * spacing;
  coarse_px_ = tolerances.coarse * spacing;
  gap_px_ = tolerances.gap * spacing;
}

std::optional<LatticeVector> HopTest::Hop(Shift residual) const {
  // Cheap exit for the common case, a consistent pair.
  if (Length(residual) < hop_px_) return std::nullopt;
  const LatticeVector n = lattice_.NearestLatticeVector(residual);
  if (n.IsZero() || !(Length(residual - n.vector) < hop_px_)) return std::nullopt;
  return n;
}

bool HopTest::WithinHop(Shift deviation) const { return Length(deviation) <= hop_px_; }

std::optional<LatticeVector> HopTest::CoarseSite(Shift residual) const {
  const LatticeVector n = lattice_.NearestLatticeVector(residual);
  if (Length(residual - n.vector) > coarse_px_) return std::nullopt;
  return n;
}

std::optional<LatticeVector> HopTest::GapSite(Shift deviation) const {
  const LatticeVector nearest = lattice_.NearestLatticeVector(deviation);
  const double distance = Length(deviation - nearest.vector);
  if (!(distance <= gap_px_)) return std::nullopt;
  // For a reduced basis the second-nearest site is among the nearest's
  // neighbours.
  double second = std::numeric_limits<double>::infinity();
  for (int da = -1; da <= 1; ++da) {
    for (int db = -1; db <= 1; ++db) {
      if (da == 0 && db == 0) continue;
      second = std::min(second, Length(deviation - lattice_.Vector(nearest.na + da, nearest.nb + db)));
    }
  }
  if (!(distance <= tolerances_.gap_clarity * second)) return std::nullopt;
  return nearest;
}

}  // namespace livealign
