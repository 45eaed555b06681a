#pragma once
// The hop test: the one place that decides whether a residual is a unit-cell
// hop. On a crystal, a pair correlation can lock onto a lattice translate of
// the true peak; its residual against the solution is then (nearly) a
// non-zero lattice vector. The lattice tracker (core/lattice_tracker.hpp)
// owns the lattice estimate and the tolerances (EngineOptions::hop_tolerance,
// coarse_hop_tolerance, gap_hop_tolerance, gap_clarity, as HopTolerances) and
// builds this object from them;
// everyone who asks "is this a hop?" asks it:
//  - the consistency solver, which is otherwise lattice-agnostic: it is
//    handed a HopTest as its only notion of the lattice, and uses Hop() to
//    correct a pair measurement by the hop before weighting it;
//  - the lattice offsets' continuity and coarse tests and the temporal
//    check, through the tracker, with the same tolerances.
//
// A small immutable value (copyable, thread-compatible): a background solve
// takes its own copy.
//
//   HopTest hops(lattice, HopTolerances{});
//   if (auto hop = hops.Hop(residual)) measured += hop->vector;

#include <optional>

#include "core/lattice.hpp"
#include "core/shift.hpp"

namespace livealign {

class HopTest {
 public:
  // Requires tolerances.hop, .coarse and .gap in (0, 0.5): below half a
  // spacing no two lattice translates are that close, so the nearest vector
  // is unique; and .gap_clarity in (0, 1].
  // Throws std::invalid_argument otherwise or for an invalid lattice.
  HopTest(const Lattice& lattice, HopTolerances tolerances);

  // The non-zero lattice vector within hop_px() of `residual`, if any: the
  // residual is then a unit-cell hop by that vector.
  std::optional<LatticeVector> Hop(Shift residual) const;
  // Whether `deviation` is within hop_px() of zero (no hop, smooth drift).
  bool WithinHop(Shift deviation) const;
  // The lattice vector (possibly zero) within coarse_px() of `residual`, if
  // any: the test for the coarse (Bragg-free) pairs, whose peaks are less
  // precise.
  std::optional<LatticeVector> CoarseSite(Shift residual) const;
  // The lattice vector (possibly zero) nearest `deviation` from a prediction
  // made across a gap in time, if it is within gap_px() and clearly the
  // nearest (at most tolerances().gap_clarity times as far as the next one).
  std::optional<LatticeVector> GapSite(Shift deviation) const;

  // Tolerances in pixels: the fractions times the shortest lattice spacing.
  double hop_px() const { return hop_px_; }
  double coarse_px() const { return coarse_px_; }
  double gap_px() const { return gap_px_; }
  const HopTolerances& tolerances() const { return tolerances_; }
  const Lattice& lattice() const { return lattice_; }

 private:
  Lattice lattice_;
  HopTolerances tolerances_;
  double hop_px_;
  double coarse_px_;
  double gap_px_;
};

}  // namespace livealign
