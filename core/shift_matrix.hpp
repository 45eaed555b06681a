#pragma once
// The shift matrices R_ij of a registration and the status of every pair:
// the one type the solver exports, the engine publishes (in final
// coordinates), the codec sends as the `matrices` message and the PNG writer
// draws. The status codes are the wire values of docs/protocol.md.
//
// Dense k x k, row-major: entry (i, j) is the used j_from_i shift in pixels
// for i < j and its inverse for i > j; NaN where there is no measurement; the
// diagonal is 0 with status kMissing. O(k^2) memory: built only on request
// (core/registration_result.hpp).

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/shift.hpp"

namespace livealign {

enum class PairStatus : std::uint8_t {
  kMissing = 0,    // no measurement (no peak, or the diagonal)
  kInlier = 1,
  kRejected = 2,   // an outlier: not used by the solution
  kSnapped = 3,    // an inlier after correction by a lattice vector
  kNoOverlap = 4,  // not correlated: the frames' predicted overlap was too small
};
constexpr std::uint8_t kMaxPairStatus = 4;

struct ShiftMatrix {
  int k = 0;
  std::vector<double> x, y;
  std::vector<PairStatus> status;

  // k x k with every entry missing (NaN) and a zero diagonal.
  static ShiftMatrix Missing(int k) {
    ShiftMatrix m;
    m.k = k;
    const std::size_t cells = static_cast<std::size_t>(k) * static_cast<std::size_t>(k);
    m.x.assign(cells, std::numeric_limits<double>::quiet_NaN());
    m.y.assign(cells, std::numeric_limits<double>::quiet_NaN());
    m.status.assign(cells, PairStatus::kMissing);
    for (int d = 0; d < k; ++d) m.x[m.index(d, d)] = m.y[m.index(d, d)] = 0;
    return m;
  }
  std::size_t index(int i, int j) const {
    return static_cast<std::size_t>(i) * static_cast<std::size_t>(k) + static_cast<std::size_t>(j);
  }
  PairStatus at(int i, int j) const { return status[index(i, j)]; }
  // Sets (i, j) to j_from_i and (j, i) to its inverse, both with `s`.
  void Set(int i, int j, Shift j_from_i, PairStatus s) {
    x[index(i, j)] = j_from_i.x;
    y[index(i, j)] = j_from_i.y;
    x[index(j, i)] = -j_from_i.x;
    y[index(j, i)] = -j_from_i.y;
    status[index(i, j)] = status[index(j, i)] = s;
  }
  void SetStatus(int i, int j, PairStatus s) { status[index(i, j)] = status[index(j, i)] = s; }
};

}  // namespace livealign
