#pragma once
// The shift-corrected average of a series, as produced by the averager and the
// engine. Plain value type.

#include "core/frame.hpp"

namespace livealign {

// Half-open pixel rectangle [row0, row1) x [col0, col1).
struct PixelRect {
  int row0 = 0;
  int row1 = 0;
  int col0 = 0;
  int col1 = 0;
  int rows() const { return row1 - row0; }
  int cols() const { return col1 - col0; }
  bool Empty() const { return row1 <= row0 || col1 <= col0; }
};

struct AverageImage {
  Frame full;           // mean over the frames covering each pixel; 0 where none
  Frame counts;         // number of frames covering each pixel
  PixelRect valid;      // region covered by every included frame
  Frame common;         // full cropped to valid
  int num_included = 0; // frames in the average
};

}  // namespace livealign
