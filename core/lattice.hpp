#pragma once
// A 2-D crystal lattice in image pixels, and its estimation from the Bragg
// peaks of an image's power spectrum.
//
// Lattice is a small value type (copyable, no synchronisation needed): the two
// real-space basis vectors a and b, in pixels, (x = column, y = row). Lattice
// vectors are na*a + nb*b with integer na, nb. Build it with Lattice::Reduced()
// so that a and b are the two shortest independent lattice vectors (Lagrange /
// Gauss reduction); NearestLatticeVector() relies on a reduced basis.
//
// EstimateLattice() is a pure function (no state; it creates its own FFT plan,
// so it may run on any thread, one call per thread).
//
//   LatticeEstimate est = EstimateLattice(average.view(), {});
//   if (est.found) solver.SetHopTest(HopTest(est.lattice, HopTolerances{}));

#include <string>
#include <vector>

#include "core/frame.hpp"
#include "core/shift.hpp"

namespace livealign {

// The hop tolerances, as fractions of the shortest lattice spacing: the one
// set every hop decision uses (through the lattice tracker's HopTest,
// core/hop_test.hpp: the solver's triangle pre-correction and pair
// correction, the lattice offsets' continuity and coarse tests, the temporal
// check's spikes, the lattice offsets' placement after a gap), exposed as
// EngineOptions::hop_tolerance, coarse_hop_tolerance, gap_hop_tolerance and
// gap_clarity. A residual within `hop` of a non-zero lattice vector
// is a unit-cell hop; below half a spacing no two translates are that close.
struct HopTolerances {
  double hop = 0.25;
  // Coarse (Bragg-free, low-pass) peaks are less precise than the pairs', so
  // a coarse pair pins a lattice offset within this wider tolerance. (0.3 is
  // the value the crystal tests were tuned and pass with; not unified with
  // `hop`, to keep their results.)
  double coarse = 0.3;
  // After a gap in time (frames lost on the way) the temporal prediction's
  // error grows with the gap, so a frame is put on the lattice site nearest
  // the prediction when that site is within `gap` of the spacing and clearly
  // the nearest: its distance at most `gap_clarity` times the next site's.
  // (After 40 lost frames at ~0.4 px/frame the prediction was ~5 px off,
  // beyond `hop`, though still clearly nearer one site than any other.)
  double gap = 0.4;
  double gap_clarity = 0.6;
};

// One lattice vector na*a + nb*b.
struct LatticeVector {
  int na = 0;
  int nb = 0;
  Shift vector;  // pixels

  bool IsZero() const { return na == 0 && nb == 0; }
};

struct Lattice {
  Shift a;  // pixels; |a| <= |b| after reduction
  Shift b;  // pixels

  // The Gauss-reduced basis of the lattice spanned by (a, b): a is a shortest
  // non-zero lattice vector, b a shortest one independent of a, and
  // |a . b| <= |a|^2 / 2. Signs are not normalised; only lengths matter.
  // Throws std::invalid_argument when a and b are (nearly) collinear, zero or
  // not finite.
  static Lattice Reduced(Shift a, Shift b);

  // |a| of a reduced basis: the shortest distance between lattice sites.
  double ShortestSpacing() const;
  // Area of the unit cell, pixels^2 (always > 0 for a valid lattice).
  double CellArea() const;
  Shift Vector(int na, int nb) const { return a * na + b * nb; }
  // The lattice vector closest to v (exact for a reduced basis: the rounded
  // coordinates and their 3x3 neighbourhood are searched).
  LatticeVector NearestLatticeVector(Shift v) const;
};

std::ostream& operator<<(std::ostream& os, const Lattice& lattice);

struct LatticeEstimateOptions {
  // Local maxima of the power spectrum count as Bragg peaks when their power
  // exceeds this many times the mean spectral background at their frequency
  // (estimated per frequency ring as median / ln 2, which is exact for the
  // exponentially distributed power of noise). 30 gives ~1e-13 false peaks per
  // pixel on white noise; lower finds weaker lattices and more spurious peaks.
  double min_significance = 30.0;
  // Frequencies below this many cycles per frame (along the shorter side) are
  // ignored: they hold the image envelope, not the lattice. This also bounds the
  // largest detectable spacing to about min(rows, cols) / min_cycles_per_frame.
  double min_cycles_per_frame = 4.0;
  // Strongest peaks considered for indexing (half plane; mirrors are added).
  int max_peaks = 40;
  // A peak is indexed by (g1, g2) when it lies within this many spectrum
  // pixels of an integer combination of them.
  double index_tolerance_bins = 1.0;
  // Indexed peaks (counting both members of each +-g pair) needed to accept a
  // lattice. Two independent reflections and their mirrors make 4; 6 demands
  // at least one further reflection (g1 + g2, g1 - g2 or a harmonic), which
  // random speckle maxima almost never satisfy.
  int min_indexed_peaks = 6;

  bool Check(std::string* error) const;
};

// One Bragg peak in the power spectrum.
struct ReciprocalPeak {
  double fx = 0;           // cycles per pixel along x (columns), sub-pixel
  double fy = 0;           // cycles per pixel along y (rows)
  double significance = 0; // power / mean background at this frequency
  bool indexed = false;    // lies on the accepted reciprocal lattice
  int h = 0, k = 0;        // its index (h g1 + k g2) when indexed
};

struct LatticeEstimate {
  bool found = false;
  Lattice lattice;         // reduced real-space basis, valid when found
  Shift g1, g2;            // reciprocal basis, cycles/px (x, y), when found
  int indexed_peaks = 0;   // peaks (both half planes) on the reciprocal lattice
  // Significance of the weaker of the two basis reflections (power above the
  // spectral background); 0 when nothing was found.
  double significance = 0;
  std::vector<ReciprocalPeak> peaks;  // all significant peaks, both half planes
  std::string message;     // why found is false, or a short summary
};

// Finds the crystal lattice of `image` from its power spectrum: mean subtraction,
// Hann window, r2c FFT, significant local maxima away from the centre, sub-pixel
// refinement (Gaussian 3-point fit on log power), choice of the two shortest
// independent reciprocal vectors, least-squares refinement of (g1, g2) over all
// indexed peaks, and conversion to real space (A = G^-T). Frequencies are
// (kx / cols, ky / rows) cycles per pixel, so non-square frames are handled.
// Returns found = false (with a message) for images without a lattice: noise,
// isolated blobs, flat images. Throws std::invalid_argument for an empty image,
// an image smaller than 16 x 16 or invalid options.
LatticeEstimate EstimateLattice(FrameView image, const LatticeEstimateOptions& options);

}  // namespace livealign
