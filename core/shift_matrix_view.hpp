#pragma once
// A bounded view of the shift matrices (core/shift_matrix.hpp): what the
// daemon publishes and the web page draws instead of the dense k x k
// matrices, which are 225 MB (as float32) at the k = 5000 frames of a long
// session and take longer to build than an update.
//
// Two shapes, one type:
//   - the overview: the whole matrix in at most kShiftMatrixViewCells cells
//     per side, each cell summarising a block x block square of entries
//     (block = ceil(k / kShiftMatrixViewCells); for k <= kShiftMatrixViewCells
//     block is 1 and the view is the dense matrix exactly);
//   - a window: entries [i0, i0 + n) x [j0, j0 + n) at full resolution
//     (block 1), n <= kShiftMatrixWindowMaxSize.
//
// A cell's value is the mean of its entries that the solution uses (inlier or
// snapped pairs, and the diagonal's zeros), or, when it has none, the mean of
// its rejected pairs; NaN when it has neither. Its status is the dominant
// one of its measured pairs (the most frequent of inlier, snapped, rejected;
// a tie goes to the worse, rejected > snapped > inlier), or without a
// measured pair "not correlated" when any pair is, else missing. Dominant,
// not worst: with a few per cent of outliers spread over the series every
// 20 x 20 block holds one, and the overview would show nothing but
// "rejected"; a lone outlier shows in the window at full resolution. Entry
// values are in final coordinates, as in the dense matrix (R_ij ~ s_j - s_i).
// By linearity, a cell's mean of used entries reads the mean of s_j - s_i
// over the same pairs.
//
// Built in O(stored pairs + cells) from the pairs themselves
// (ShiftMatrixViewBuilder), never through the dense matrix.

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/shift.hpp"
#include "core/shift_matrix.hpp"

namespace livealign {

// Cells per side of the overview: 256^2 cells are ~0.6 MB on the wire
// (float32 x, y and a status byte) whatever k is, and a canvas a browser
// redraws in a few ms.
constexpr int kShiftMatrixViewCells = 256;
// Largest window side at full resolution (as large as the overview).
constexpr int kShiftMatrixWindowMaxSize = 256;
// Up to this many frames the files (shift_matrix.png) still draw the dense
// matrix, one cell per pair; beyond it they draw the overview.
constexpr int kDenseShiftMatrixMaxFrames = 1024;

struct ShiftMatrixView {
  int k = 0;       // frames of the registration
  int i0 = 0;      // first frame of cell row 0
  int j0 = 0;      // first frame of cell column 0
  int block = 1;   // frames per cell side; 1 is full resolution
  int n = 0;       // cells per side
  // n x n, row-major; cell (r, c) covers rows [i0 + r*block, i0 + (r+1)*block)
  // and columns [j0 + c*block, ...), both cut at k.
  std::vector<double> x, y;
  std::vector<PairStatus> status;

  std::size_t index(int r, int c) const {
    return static_cast<std::size_t>(r) * static_cast<std::size_t>(n) + static_cast<std::size_t>(c);
  }
};

// A full-resolution window [i0, i0 + n) x [j0, j0 + n).
struct ShiftMatrixWindowRequest {
  int i0 = 0;
  int j0 = 0;
  int n = 0;
};

// Why a window request cannot be answered for k frames ("" when it can): n
// outside [1, kShiftMatrixWindowMaxSize], or the window not inside [0, k).
std::string ShiftMatrixWindowError(int k, const ShiftMatrixWindowRequest& request);

// Accumulates pairs into a view.
//   ShiftMatrixViewBuilder b = ShiftMatrixViewBuilder::Overview(k);
//   for each measured pair i < j: b.Add(i, j, j_from_i, status);
//   ShiftMatrixView view = b.Finish(no_overlap);
class ShiftMatrixViewBuilder {
 public:
  // The overview of k >= 0 frames.
  static ShiftMatrixViewBuilder Overview(int k);
  // A window; throws std::invalid_argument with ShiftMatrixWindowError.
  static ShiftMatrixViewBuilder Window(int k, const ShiftMatrixWindowRequest& request);

  // The frames whose pairs with earlier frames can fall in the view: the
  // union of its row and column frames, as at most two disjoint ranges
  // [first, second) (a pair i < j lands in the view only if j is in them).
  std::vector<std::pair<int, int>> LaterFrameRanges() const;

  // Pair i < j < k, measured (inlier, snapped or rejected), j_from_i in final
  // coordinates: enters (i, j) and its inverse (j, i) where they are in the
  // view. Add each pair once.
  void Add(int i, int j, Shift j_from_i, PairStatus status);

  // The view. `no_overlap(i, j)` (i < j): the pair was not correlated; it is
  // asked only for cells with no measured pair (so its cost stays
  // proportional to the empty cells), at most once per pair and cell.
  ShiftMatrixView Finish(const std::function<bool(int i, int j)>& no_overlap) const;

 private:
  struct Cell {
    double used_x = 0, used_y = 0, rejected_x = 0, rejected_y = 0;
    int used = 0, rejected = 0;  // used: inlier + snapped (+ the diagonal, in Finish)
    int inlier = 0, snapped = 0;
  };
  ShiftMatrixViewBuilder(int k, int i0, int j0, int block, int n);
  void Enter(int i, int j, Shift value, PairStatus status);

  int k_, i0_, j0_, block_, n_;
  // Frame -> its cell row / column, -1 outside the view: a lookup instead of
  // two divisions per entry (all 12.5 M pairs of k = 5000 pass through here).
  std::vector<int> row_of_frame_, col_of_frame_;
  std::vector<Cell> cells_;
};

// The overview (i0 = j0 = 0) as a ShiftMatrix of its n x n cells (for the
// PNG writer, which draws a ShiftMatrix).
ShiftMatrix CellsAsShiftMatrix(const ShiftMatrixView& view);

}  // namespace livealign
