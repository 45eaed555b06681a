#pragma once
// Translation value types shared by the correlator, the solver and the outputs.
//
// Sign convention (the one in shifts.csv and on the wire): the shift of frame i,
// s_i, is where a feature at (x, y) in frame 0 appears in frame i, minus (x, y);
// frame 0 is (0, 0); x is the column, y the row, both in pixels.
// A pair measurement j_from_i = s_j - s_i: a feature at p in frame i is at
// p + j_from_i in frame j. Then k_from_i = k_from_j + j_from_i, and
// i_from_j = j_from_i.Inverse().

#include <cmath>
#include <ostream>
#include <vector>

#include "core/frame.hpp"

namespace livealign {

struct Shift {
  double x = 0.0;  // columns
  double y = 0.0;  // rows

  Shift Inverse() const { return {-x, -y}; }
  // sqrt rather than std::hypot: hypot's overflow care costs a third of the solver's time.
  double Norm() const { return std::sqrt(x * x + y * y); }
  Shift operator+(const Shift& o) const { return {x + o.x, y + o.y}; }
  Shift operator-(const Shift& o) const { return {x - o.x, y - o.y}; }
  Shift operator*(double f) const { return {x * f, y * f}; }
  Shift& operator+=(const Shift& o) { x += o.x; y += o.y; return *this; }
  Shift& operator-=(const Shift& o) { x -= o.x; y -= o.y; return *this; }
  bool operator==(const Shift& o) const { return x == o.x && y == o.y; }
  bool operator!=(const Shift& o) const { return !(*this == o); }
};

inline std::ostream& operator<<(std::ostream& os, const Shift& s) {
  return os << "(x " << s.x << ", y " << s.y << ")";
}

// One local maximum of a pair's correlation map, refined to sub-pixel.
struct PeakCandidate {
  Shift j_from_i;      // candidate s_j - s_i, pixels
  double height = 0;   // correlation value at the peak, normalised so that a
                       // frame correlated with itself gives 1
  bool refined = false;  // true when refined to the final (DFT) precision

  bool operator==(const PeakCandidate& o) const {
    return j_from_i == o.j_from_i && height == o.height && refined == o.refined;
  }
};

inline std::ostream& operator<<(std::ostream& os, const PeakCandidate& c) {
  return os << "{" << c.j_from_i << ", height " << c.height << "}";
}

// Everything measured for the pair (i, j), keyed smaller id first (i < j).
// candidates[0] is the highest peak; the list holds distinct local maxima in
// decreasing height. Empty when no peak lay in the search window.
struct PairMeasurement {
  frame_id_t i = kInvalidFrameId;
  frame_id_t j = kInvalidFrameId;
  std::vector<PeakCandidate> candidates;
  // Height of the best peak relative to the map's RMS away from the peak:
  // a unitless confidence, large for a clear correlation.
  double peak_to_rms = 0;
  // Result of the hop-free coarse stage (Bragg peaks masked), when it ran.
  bool has_coarse = false;
  Shift coarse_j_from_i;

  bool operator==(const PairMeasurement& o) const {
    return i == o.i && j == o.j && candidates == o.candidates;
  }
};

inline std::ostream& operator<<(std::ostream& os, const PairMeasurement& m) {
  os << "pair(" << m.i << "->" << m.j << ": ";
  for (const auto& c : m.candidates) os << c << " ";
  return os << ")";
}

}  // namespace livealign
