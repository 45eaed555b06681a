#include "core/mosaic_preview.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace livealign {
namespace {

int CeilDiv(int a, int b) { return (a + b - 1) / b; }

// floor(a / b) for any sign of a (b > 0).
int FloorDiv(int a, int b) { return a >= 0 ? a / b : -CeilDiv(-a, b); }

// `rect` (frame-0 coordinates) in preview pixels of a preview whose pixel
// (0, 0) starts at `origin`, rounded outward and cut to the preview.
AverageImage::Rect ToPreview(const AverageImage::Rect& rect, const AverageImage::Rect& extent, int bin,
                             Shape preview) {
  if (rect.Empty()) return {};
  AverageImage::Rect out{FloorDiv(rect.row0 - extent.row0, bin), -FloorDiv(-(rect.row1 - extent.row0), bin),
                         FloorDiv(rect.col0 - extent.col0, bin), -FloorDiv(-(rect.col1 - extent.col0), bin)};
  out.row0 = std::clamp(out.row0, 0, preview.rows);
  out.row1 = std::clamp(out.row1, 0, preview.rows);
  out.col0 = std::clamp(out.col0, 0, preview.cols);
  out.col1 = std::clamp(out.col1, 0, preview.cols);
  if (out.Empty()) return {};
  return out;
}

}  // namespace

int MosaicPreviewBin(const AverageImage::Rect& extent, int max_side) {
  if (max_side < 1) throw std::invalid_argument("MosaicPreviewBin: max_side must be >= 1");
  return std::max(1, CeilDiv(std::max(extent.rows(), extent.cols()), max_side));
}

MosaicPreview MakeMosaicPreview(const AverageImage& image, Shape window_shape, int max_side) {
  MosaicPreview preview;
  preview.bin = MosaicPreviewBin(image.mosaic_extent, max_side);
  if (image.mosaic_extent.Empty()) return preview;
  const Shape mosaic_shape = image.mosaic.shape();
  if (mosaic_shape.rows != image.mosaic_extent.rows() || mosaic_shape.cols != image.mosaic_extent.cols() ||
      image.mosaic_counts.shape() != mosaic_shape) {
    throw std::invalid_argument("MakeMosaicPreview: mosaic planes do not match the extent");
  }
  const int bin = preview.bin;
  preview.extent = image.mosaic_extent;
  const Shape shape{CeilDiv(mosaic_shape.rows, bin), CeilDiv(mosaic_shape.cols, bin)};
  preview.mean = Frame(shape);
  preview.min_counts.assign(static_cast<std::size_t>(shape.Pixels()), 0);

  // One pass over the mosaic, row by row, accumulating into a row of bins.
  std::vector<double> weighted(static_cast<std::size_t>(shape.cols));
  std::vector<double> weight(static_cast<std::size_t>(shape.cols));
  std::vector<float> fewest(static_cast<std::size_t>(shape.cols));
  for (int out_row = 0; out_row < shape.rows; ++out_row) {
    std::fill(weighted.begin(), weighted.end(), 0.0);
    std::fill(weight.begin(), weight.end(), 0.0);
    std::fill(fewest.begin(), fewest.end(), std::numeric_limits<float>::infinity());
    const int row_end = std::min(mosaic_shape.rows, (out_row + 1) * bin);
    for (int r = out_row * bin; r < row_end; ++r) {
      const float* mean = image.mosaic.view().row(r);
      const float* count = image.mosaic_counts.view().row(r);
      for (int out_col = 0, c0 = 0; out_col < shape.cols; ++out_col, c0 += bin) {
        const int c1 = std::min(mosaic_shape.cols, c0 + bin);
        double row_weighted = 0, row_weight = 0;
        float row_fewest = fewest[out_col];
        for (int c = c0; c < c1; ++c) {
          row_weighted += static_cast<double>(mean[c]) * count[c];
          row_weight += count[c];
          row_fewest = std::min(row_fewest, count[c]);
        }
        weighted[out_col] += row_weighted;
        weight[out_col] += row_weight;
        fewest[out_col] = row_fewest;
      }
    }
    for (int out_col = 0; out_col < shape.cols; ++out_col) {
      const std::size_t i = static_cast<std::size_t>(out_row) * shape.cols + out_col;
      preview.mean.data()[i] = weight[out_col] > 0 ? static_cast<float>(weighted[out_col] / weight[out_col]) : 0.0f;
      preview.min_counts[i] = static_cast<std::uint16_t>(std::clamp(fewest[out_col], 0.0f, 65535.0f));
    }
  }
  preview.best_covered = ToPreview(image.best_covered, image.mosaic_extent, bin, shape);
  preview.window = ToPreview(AverageImage::Rect{0, window_shape.rows, 0, window_shape.cols},
                             image.mosaic_extent, bin, shape);
  return preview;
}

}  // namespace livealign
