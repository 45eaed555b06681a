#pragma once
// The shift-corrected average of a series, as produced by ShiftedAverager and
// RegistrationEngine. Plain value type (Frames are move-only).

#include <ostream>

#include "core/frame.hpp"

namespace livealign {

struct AverageImage {
  // Half-open pixel rectangle [row0, row1) x [col0, col1) in frame-0 coordinates.
  struct Rect {
    int row0 = 0, row1 = 0, col0 = 0, col1 = 0;
    int rows() const { return row1 > row0 ? row1 - row0 : 0; }
    int cols() const { return col1 > col0 ? col1 - col0 : 0; }
    bool Empty() const { return rows() == 0 || cols() == 0; }
    bool operator==(const Rect& o) const {
      return row0 == o.row0 && row1 == o.row1 && col0 == o.col0 && col1 == o.col1;
    }
  };

  Frame full;    // mean over the frames covering each pixel; 0 where none does
  Frame counts;  // number of frames covering each pixel
  Rect valid;    // covered by EVERY included frame (empty when none is included)
  Frame common;  // `full` cropped to `valid` (0 x 0 when valid is empty)
  int num_included = 0;
};
std::ostream& operator<<(std::ostream& os, const AverageImage::Rect& rect);

}  // namespace livealign
