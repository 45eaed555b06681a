#include "core/hop_test.hpp"

#include <cmath>
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
  const double spacing = lattice_.ShortestSpacing();
  hop_px_ = tolerances.hop * spacing;
  coarse_px_ = tolerances.coarse * spacing;
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

}  // namespace livealign
