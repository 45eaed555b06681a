#pragma once
// A bounded copy of the mosaic for the live preview (the daemon's `mosaic`
// message, docs/protocol.md).
//
// Why: the mosaic follows the drift, so it outgrows any fixed frame (at 2048^2
// with a drift of two frame widths it is 2048 x 6144 px, 50 MB of float32), and the preview
// sends it every half second to every subscriber and browser. Binning by an
// integer factor bounds it whatever the drift, and keeps the frame-0
// coordinates a viewer needs exact (extent and bin are integers).
//
// Preview pixel (r, c) covers the mosaic pixels [r*bin, (r+1)*bin) x
// [c*bin, (c+1)*bin) (cut at the mosaic's edge). Its value is the mean of
// every frame sample in them (each mosaic pixel weighted by its frame count),
// 0 where no frame covers any; its count is the fewest frames covering any of
// them, so "covered by n frames" never overstates.

#include <cstdint>
#include <vector>

#include "core/average_image.hpp"
#include "core/frame.hpp"

namespace livealign {

struct MosaicPreview {
  int bin = 1;                    // preview pixel side, in mosaic pixels
  AverageImage::Rect extent;      // the mosaic's rectangle, frame-0 pixel coordinates
  Frame mean;                     // ceil(rows / bin) x ceil(cols / bin)
  std::vector<std::uint16_t> min_counts;  // row-major like `mean`; saturates at 65535
  // In preview pixels, rounded outward (each holds every preview pixel it
  // touches): the best-covered region (AverageImage::best_covered) and frame
  // 0's own window [0, rows) x [0, cols).
  AverageImage::Rect best_covered;
  AverageImage::Rect window;
};

// The smallest bin whose preview has no side longer than max_side (>= 1).
int MosaicPreviewBin(const AverageImage::Rect& extent, int max_side);

// image.mosaic binned by MosaicPreviewBin(image.mosaic_extent, max_side);
// `window_shape` is frame 0's shape. An empty mosaic (no frame included)
// gives an empty preview (mean 0 x 0). Requires max_side >= 1.
MosaicPreview MakeMosaicPreview(const AverageImage& image, Shape window_shape, int max_side);

}  // namespace livealign
