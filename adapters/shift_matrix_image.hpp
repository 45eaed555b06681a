#pragma once
// The shift-matrix picture a microscopist uses to judge a registration: the
// measured pair shifts R_ij (x and y) as two k x k colour matrices side by
// side. A good registration shows smooth, antisymmetric matrices; outliers
// stand out as isolated cells of the wrong colour.
//
// Layout: [X panel][gap][Y panel], each panel k*cell_px square; row i, column
// j shows entry (i, j). Colours: diverging blue-white-red, symmetric about 0
// (blue negative, white 0, red positive), range per panel = max |value| over
// inliers and snapped pairs (rejected pairs are outliers and would wash the
// scale out), unless Options::range_px fixes it. Missing entries (NaN or
// kMissing, e.g. the diagonal) are light grey. Rejected pairs get a black X
// across the cell (a black cell when cells are under 5 px); snapped pairs a
// green border (a green cell when under 4 px); pairs not correlated for lack
// of overlap (kNoOverlap) are mid grey. The data is core/shift_matrix.hpp's. The gap is
// dark grey. RenderShiftMatrix draws only the cells.
//
// RenderShiftMatrixFigure (what shift_matrix.png holds) sets the two panels
// in a figure a microscopist reads without a caption: each panel titled
// ("shift x (px)", "shift y (px)"), its axes labelled "frame j" (columns) and
// "frame i" (rows) with frame-number ticks, a colour bar beside it scaled in
// pixels (-range, 0, +range), and a legend line for the marks. Text is set
// with cairo in DejaVu Sans (fontconfig's fallback when absent).
//
// Stateless and thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adapters/atomic_file.hpp"
#include "adapters/rgb_image.hpp"
#include "core/shift_matrix.hpp"

namespace livealign {

struct ShiftMatrixImageOptions {
  // Cell size in pixels; 0 picks max(1, min(32, 512 / k)) so small series are
  // legible and large ones stay below ~1000 px wide.
  int cell_px = 0;
  // Dark gap between the X and Y panels.
  int gap_px = 4;
  // Fixed symmetric colour range (|value| at full colour) for both panels;
  // unset = per-panel automatic range.
  std::optional<double> range_px;
  // Frames per cell side: > 1 when the data is an overview's cells
  // (core/shift_matrix_view.hpp), so the axes still count frames.
  int frames_per_cell = 1;

  bool Check(std::string* error) const;
};

struct ShiftMatrixImage {
  RgbImage image;
  int cell_px = 0;         // cell size used
  double range_x_px = 0;   // |x| at full colour
  double range_y_px = 0;   // |y| at full colour
};

// A rectangle of the figure, pixels: [x, x + width) x [y, y + height).
struct FigureRect {
  int x = 0, y = 0, width = 0, height = 0;
};

// The annotated figure and where its parts are.
struct ShiftMatrixFigure {
  RgbImage image;
  ShiftMatrixImage matrices;      // the cells, copied unchanged into the panels
  FigureRect panel_x, panel_y;    // the k x k cells of each panel
  FigureRect bar_x, bar_y;        // colour bars: +range at the top, -range at the bottom
  FigureRect bar_labels_x, bar_labels_y;  // their tick values, px
  FigureRect title_x, title_y;    // above each panel
  FigureRect label_j_x, label_j_y;  // "frame j" and the column ticks, below each panel
  FigureRect label_i_x, label_i_y;  // "frame i" and the row ticks, left of each panel
  FigureRect legend;              // the line explaining grey, X and green
};

// Colours used, exposed so tests and legends agree with the picture.
constexpr Rgb kShiftMatrixMissing{200, 200, 200};
constexpr Rgb kShiftMatrixNoOverlap{120, 120, 120};
constexpr Rgb kShiftMatrixGap{64, 64, 64};
constexpr Rgb kShiftMatrixRejectedMark{0, 0, 0};
constexpr Rgb kShiftMatrixSnappedMark{0, 170, 0};

// Blue-white-red for t in [-1, 1] (clamped): -1 blue, 0 white, +1 red.
Rgb DivergingColour(double t);

// Renders the picture. Throws std::invalid_argument when k < 1, the vectors
// are not k*k long, a status is not a PairStatus, the options are invalid, or a panel
// would exceed 16384 pixels (k * cell_px).
ShiftMatrixImage RenderShiftMatrix(const ShiftMatrix& data,
                                   const ShiftMatrixImageOptions& options = {});

// The labelled figure around RenderShiftMatrix(data, options); throws as it.
ShiftMatrixFigure RenderShiftMatrixFigure(const ShiftMatrix& data,
                                          const ShiftMatrixImageOptions& options = {});

// RenderShiftMatrixFigure + WriteRgbPng (atomic). Returns the rendering.
ShiftMatrixFigure WriteShiftMatrixPng(const std::string& path, const ShiftMatrix& data,
                                     const ShiftMatrixImageOptions& options = {},
                                     const AtomicWriteOptions& atomic = {});

}  // namespace livealign
