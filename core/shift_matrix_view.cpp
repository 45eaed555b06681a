#include "core/shift_matrix_view.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace livealign {

std::string ShiftMatrixWindowError(int k, const ShiftMatrixWindowRequest& r) {
  if (r.n < 1 || r.n > kShiftMatrixWindowMaxSize) {
    return "window size n = " + std::to_string(r.n) + " is not in [1, " +
           std::to_string(kShiftMatrixWindowMaxSize) + "]";
  }
  // In 64 bits: i0 + n must not overflow for any int i0.
  auto inside = [&](int first) {
    return first >= 0 && static_cast<long long>(first) + r.n <= static_cast<long long>(k);
  };
  if (!inside(r.i0) || !inside(r.j0)) {
    return "window [" + std::to_string(r.i0) + ", +" + std::to_string(r.n) + ") x [" +
           std::to_string(r.j0) + ", +" + std::to_string(r.n) + ") is not inside the " +
           std::to_string(k) + " frames";
  }
  return "";
}

ShiftMatrixViewBuilder::ShiftMatrixViewBuilder(int k, int i0, int j0, int block, int n)
    : k_(k), i0_(i0), j0_(j0), block_(block), n_(n),
      row_of_frame_(static_cast<std::size_t>(k), -1),
      col_of_frame_(static_cast<std::size_t>(k), -1),
      cells_(static_cast<std::size_t>(n) * static_cast<std::size_t>(n)) {
  const long span = static_cast<long>(n) * block;
  for (int f = 0; f < k; ++f) {
    if (f >= i0 && f - i0 < span) row_of_frame_[static_cast<std::size_t>(f)] = (f - i0) / block;
    if (f >= j0 && f - j0 < span) col_of_frame_[static_cast<std::size_t>(f)] = (f - j0) / block;
  }
}

ShiftMatrixViewBuilder ShiftMatrixViewBuilder::Overview(int k) {
  if (k < 0) throw std::invalid_argument("ShiftMatrixViewBuilder: k < 0");
  const int block = std::max(1, (k + kShiftMatrixViewCells - 1) / kShiftMatrixViewCells);
  return ShiftMatrixViewBuilder(k, 0, 0, block, (k + block - 1) / block);
}

ShiftMatrixViewBuilder ShiftMatrixViewBuilder::Window(int k, const ShiftMatrixWindowRequest& r) {
  const std::string error = ShiftMatrixWindowError(k, r);
  if (!error.empty()) throw std::invalid_argument(error);
  return ShiftMatrixViewBuilder(k, r.i0, r.j0, 1, r.n);
}

std::vector<std::pair<int, int>> ShiftMatrixViewBuilder::LaterFrameRanges() const {
  const int span = std::min(k_, n_ * block_);
  std::pair<int, int> rows{i0_, std::min(k_, i0_ + span)};
  std::pair<int, int> cols{j0_, std::min(k_, j0_ + span)};
  if (rows.first > cols.first) std::swap(rows, cols);
  if (rows.second >= cols.first) return {{rows.first, std::max(rows.second, cols.second)}};
  return {rows, cols};
}

void ShiftMatrixViewBuilder::Enter(int i, int j, Shift value, PairStatus status) {
  const int r = row_of_frame_[static_cast<std::size_t>(i)];
  const int c = col_of_frame_[static_cast<std::size_t>(j)];
  if (r < 0 || c < 0) return;
  Cell& cell = cells_[static_cast<std::size_t>(r) * static_cast<std::size_t>(n_) + static_cast<std::size_t>(c)];
  if (status == PairStatus::kRejected) {
    cell.rejected_x += value.x;
    cell.rejected_y += value.y;
    ++cell.rejected;
    return;
  }
  cell.used_x += value.x;
  cell.used_y += value.y;
  ++cell.used;
  if (status == PairStatus::kInlier) ++cell.inlier;
  if (status == PairStatus::kSnapped) ++cell.snapped;
}

void ShiftMatrixViewBuilder::Add(int i, int j, Shift j_from_i, PairStatus status) {
  if (i < 0 || i >= j || j >= k_) throw std::invalid_argument("ShiftMatrixViewBuilder::Add: not i < j < k");
  if (status != PairStatus::kInlier && status != PairStatus::kSnapped &&
      status != PairStatus::kRejected) {
    return;  // not measured: no value (no_overlap is asked in Finish)
  }
  Enter(i, j, j_from_i, status);
  Enter(j, i, Shift{-j_from_i.x, -j_from_i.y}, status);
}

ShiftMatrixView ShiftMatrixViewBuilder::Finish(
    const std::function<bool(int i, int j)>& no_overlap) const {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  ShiftMatrixView view;
  view.k = k_;
  view.i0 = i0_;
  view.j0 = j0_;
  view.block = block_;
  view.n = n_;
  view.x.assign(cells_.size(), kNaN);
  view.y.assign(cells_.size(), kNaN);
  view.status.assign(cells_.size(), PairStatus::kMissing);
  for (int r = 0; r < n_; ++r) {
    const int row_first = i0_ + r * block_, row_end = std::min(k_, row_first + block_);
    for (int c = 0; c < n_; ++c) {
      const int col_first = j0_ + c * block_, col_end = std::min(k_, col_first + block_);
      const std::size_t index = view.index(r, c);
      Cell cell = cells_[index];
      // The diagonal's entries are zeros the dense matrix holds (with status
      // missing): a used value, no status.
      const int diagonal = std::max(0, std::min(row_end, col_end) - std::max(row_first, col_first));
      cell.used += diagonal;
      if (cell.used > 0) {
        view.x[index] = cell.used_x / cell.used;
        view.y[index] = cell.used_y / cell.used;
      } else if (cell.rejected > 0) {
        view.x[index] = cell.rejected_x / cell.rejected;
        view.y[index] = cell.rejected_y / cell.rejected;
      }
      PairStatus& status = view.status[index];
      const int most = std::max({cell.inlier, cell.snapped, cell.rejected});
      if (most > 0) {
        status = cell.rejected == most  ? PairStatus::kRejected
                 : cell.snapped == most ? PairStatus::kSnapped
                                        : PairStatus::kInlier;
      } else {
        bool found = false;
        for (int i = row_first; i < row_end && !found; ++i) {
          for (int j = col_first; j < col_end && !found; ++j) {
            if (i != j) found = no_overlap(std::min(i, j), std::max(i, j));
          }
        }
        if (found) status = PairStatus::kNoOverlap;
      }
    }
  }
  return view;
}

ShiftMatrix CellsAsShiftMatrix(const ShiftMatrixView& view) {
  if (view.i0 != 0 || view.j0 != 0) throw std::invalid_argument("CellsAsShiftMatrix: not an overview");
  ShiftMatrix m;
  m.k = view.n;
  m.x = view.x;
  m.y = view.y;
  m.status = view.status;
  return m;
}

}  // namespace livealign
