#pragma once
// The best-covered region of a mosaic: where image quality is measured once
// the drift has carried the view away from frame 0 and the region every frame
// covers has shrunk (or vanished).
//
// Definition: the largest-area axis-aligned rectangle on which every pixel is
// covered by at least `min_fraction` of the highest per-pixel frame count in
// the mosaic (and, when `second_counts` is given, by at least one frame of
// each of the two count sets: the even and odd half sets of the FRC). Ties go
// to the rectangle found first in row-major order. It is empty only when no
// pixel qualifies (no frame at all).
//
// Cost: O(rows * cols) (maximal rectangle under a histogram, row by row).

#include "core/average_image.hpp"

namespace livealign {

// counts and second_counts (may be null) are rows x cols row-major.
AverageImage::Rect BestCoveredRect(const int* counts, const int* second_counts, int rows, int cols,
                                   double min_fraction);

}  // namespace livealign
