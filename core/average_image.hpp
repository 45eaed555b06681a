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

  // The frame-0 window: pixel (r, c) is frame-0 pixel (r, c).
  Frame full;    // mean over the frames covering each pixel; 0 where none does
  Frame counts;  // number of frames covering each pixel
  Rect valid;    // covered by EVERY included frame (empty when none is included)
  Frame common;  // `full` cropped to `valid` (0 x 0 when valid is empty)
  int num_included = 0;

  // The mosaic: the union of every included frame's footprint, so frames the
  // drift carried away from frame 0 still contribute. mosaic pixel (r, c) is
  // frame-0 pixel (mosaic_extent.row0 + r, mosaic_extent.col0 + c); the
  // extent's origin may be negative. Its size follows the drift extent, not
  // the number of frames.
  Rect mosaic_extent;   // frame-0 coordinates; empty when none is included
  Frame mosaic;         // mean over the frames covering each pixel; 0 where none does
  Frame mosaic_counts;  // number of frames covering each pixel
  // Where image quality is measured (core/coverage_region.hpp): the largest
  // rectangle covered by at least a fraction of the highest count (and by
  // both FRC half sets), shrunk about its centre to sides whose prime factors
  // are 2, 3, 5 and 7 (FftFriendlySizeAtMost: each analysis of it is an FFT);
  // frame-0 coordinates, inside mosaic_extent. Non-empty whenever a frame is
  // included.
  Rect best_covered;
  Frame best;  // `mosaic` cropped to best_covered
};
std::ostream& operator<<(std::ostream& os, const AverageImage::Rect& rect);

}  // namespace livealign
