#include "adapters/shift_matrix_image.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "adapters/png_writer.hpp"

namespace livealign {
namespace {

// ColorBrewer RdBu end points and a near-white centre.
constexpr Rgb kBlue{33, 102, 172};
constexpr Rgb kWhite{247, 247, 247};
constexpr Rgb kRed{178, 24, 43};
// Largest panel side; bounds the image at ~32k x 16k pixels (1.6 GB would be
// absurd for a diagnostic picture).
constexpr int kMaxPanelPx = 16384;

std::uint8_t Mix(std::uint8_t a, std::uint8_t b, double t) {
  return static_cast<std::uint8_t>(std::lround(a + (b - a) * t));
}

double AutoRange(const std::vector<double>& values, const std::vector<std::uint8_t>& status) {
  double range = 0;
  bool any_used = false;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    if (status[i] == kPairInlier || status[i] == kPairSnapped) {
      range = std::max(range, std::abs(values[i]));
      any_used = true;
    }
  }
  if (!any_used) {  // only rejected pairs: scale to them rather than to nothing
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (std::isfinite(values[i]) && status[i] != kPairMissing) {
        range = std::max(range, std::abs(values[i]));
      }
    }
  }
  return range > 0 ? range : 1.0;
}

void DrawPanel(const std::vector<double>& values, const ShiftMatrixData& data, double range,
               int x_offset, int cell, RgbImage* image) {
  const int k = data.k;
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      const std::size_t index = static_cast<std::size_t>(i) * k + j;
      const double v = values[index];
      const std::uint8_t status = data.status[index];
      const int x0 = x_offset + j * cell, y0 = i * cell;
      const bool missing = status == kPairMissing || !std::isfinite(v);
      image->FillRect(x0, y0, cell, cell,
                      status == kPairNoOverlap ? kShiftMatrixNoOverlap
                      : missing                ? kShiftMatrixMissing
                                               : DivergingColour(v / range));
      if (status == kPairRejected) {
        if (cell < 5) {
          image->FillRect(x0, y0, cell, cell, kShiftMatrixRejectedMark);
        } else {
          for (int t = 0; t < cell; ++t) {  // an X, two pixels thick when room
            image->set(x0 + t, y0 + t, kShiftMatrixRejectedMark);
            image->set(x0 + cell - 1 - t, y0 + t, kShiftMatrixRejectedMark);
            if (cell >= 10 && t + 1 < cell) {
              image->set(x0 + t + 1, y0 + t, kShiftMatrixRejectedMark);
              image->set(x0 + cell - 2 - t, y0 + t, kShiftMatrixRejectedMark);
            }
          }
        }
      } else if (status == kPairSnapped) {
        if (cell < 4) {
          image->FillRect(x0, y0, cell, cell, kShiftMatrixSnappedMark);
        } else {
          const int w = cell >= 10 ? 2 : 1;
          image->FillRect(x0, y0, cell, w, kShiftMatrixSnappedMark);
          image->FillRect(x0, y0 + cell - w, cell, w, kShiftMatrixSnappedMark);
          image->FillRect(x0, y0, w, cell, kShiftMatrixSnappedMark);
          image->FillRect(x0 + cell - w, y0, w, cell, kShiftMatrixSnappedMark);
        }
      }
    }
  }
}

}  // namespace

bool ShiftMatrixImageOptions::Check(std::string* error) const {
  if (cell_px < 0 || cell_px > 256) {
    if (error) *error = "cell_px must be in [0, 256], got " + std::to_string(cell_px);
    return false;
  }
  if (gap_px < 0 || gap_px > 256) {
    if (error) *error = "gap_px must be in [0, 256], got " + std::to_string(gap_px);
    return false;
  }
  if (range_px && !(std::isfinite(*range_px) && *range_px > 0)) {
    if (error) *error = "range_px must be positive and finite";
    return false;
  }
  return true;
}

Rgb DivergingColour(double t) {
  if (std::isnan(t)) return kShiftMatrixMissing;
  t = std::max(-1.0, std::min(1.0, t));
  const Rgb end = t < 0 ? kBlue : kRed;
  const double a = std::abs(t);
  return {Mix(kWhite.r, end.r, a), Mix(kWhite.g, end.g, a), Mix(kWhite.b, end.b, a)};
}

ShiftMatrixImage RenderShiftMatrix(const ShiftMatrixData& data,
                                   const ShiftMatrixImageOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("RenderShiftMatrix: " + error);
  if (data.k < 1 || data.k > 100000) throw std::invalid_argument("RenderShiftMatrix: k must be >= 1");
  const std::size_t n = static_cast<std::size_t>(data.k) * data.k;
  if (data.x.size() != n || data.y.size() != n || data.status.size() != n) {
    throw std::invalid_argument("RenderShiftMatrix: x, y and status must hold k*k entries");
  }
  for (std::uint8_t s : data.status) {
    if (s > kPairNoOverlap) throw std::invalid_argument("RenderShiftMatrix: status must be 0..4");
  }
  ShiftMatrixImage out;
  out.cell_px = options.cell_px > 0 ? options.cell_px : std::max(1, std::min(32, 512 / data.k));
  out.range_x_px = options.range_px.value_or(AutoRange(data.x, data.status));
  out.range_y_px = options.range_px.value_or(AutoRange(data.y, data.status));
  if (static_cast<long long>(data.k) * out.cell_px > kMaxPanelPx) {
    throw std::invalid_argument("RenderShiftMatrix: k * cell_px exceeds " +
                                std::to_string(kMaxPanelPx) + " pixels");
  }
  const int panel = data.k * out.cell_px;
  out.image = RgbImage(2 * panel + options.gap_px, panel, kShiftMatrixGap);
  DrawPanel(data.x, data, out.range_x_px, 0, out.cell_px, &out.image);
  DrawPanel(data.y, data, out.range_y_px, panel + options.gap_px, out.cell_px, &out.image);
  return out;
}

ShiftMatrixImage WriteShiftMatrixPng(const std::string& path, const ShiftMatrixData& data,
                                     const ShiftMatrixImageOptions& options,
                                     const AtomicWriteOptions& atomic) {
  ShiftMatrixImage rendered = RenderShiftMatrix(data, options);
  WriteRgbPng(path, rendered.image, atomic);
  return rendered;
}

}  // namespace livealign
