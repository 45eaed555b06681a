#pragma once
// Temporal plausibility check of solved shifts: stage drift is smooth, so a
// frame whose shift jumps against BOTH time neighbours by about a lattice
// vector (a spike in the second difference) is a node whose pairs were mostly
// hopped. A real stage jump is a step (one first difference), never a spike;
// stage jumps are detected by the lattice tracker (core/lattice_tracker.hpp),
// not here.
//
// Pure functions on values; thread-safe.

#include <optional>
#include <string>
#include <vector>

#include "core/hop_test.hpp"
#include "core/lattice.hpp"
#include "core/shift.hpp"

namespace livealign {

// With a lattice, a deviation counts as a lattice vector when the lattice
// tracker's hop test calls it a hop (core/hop_test.hpp).
struct TemporalCheckOptions {
  // Without a lattice: deviations (spikes) larger than this are reported.
  double spike_threshold_px = 3.0;

  bool Check(std::string* error) const;
};

struct TemporalSpike {
  int frame = 0;
  Shift deviation;           // s_k minus its interpolation from the neighbours
  bool is_lattice_vector = false;
  LatticeVector lattice_vector;  // the hop, when is_lattice_vector
};

struct TemporalCheckReport {
  std::vector<TemporalSpike> spikes;
};

// Requires: timestamps empty (then frame index is the time) or of the same size
// as shifts; NaN timestamps also fall back to the index. Throws
// std::invalid_argument on a size mismatch or invalid options. Series shorter
// than 3 frames give an empty report.
TemporalCheckReport TemporalCheck(const std::vector<Shift>& shifts,
                                  const std::vector<double>& timestamps,
                                  const std::optional<HopTest>& hops,
                                  const TemporalCheckOptions& options = {});

}  // namespace livealign
