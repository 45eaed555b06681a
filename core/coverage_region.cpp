#include "core/coverage_region.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace livealign {
namespace {

// Largest rectangle in a 0/1 mask (row-major), by the histogram method: for
// each row, heights[c] is the run of qualifying pixels ending at that row in
// column c, and the largest rectangle under that histogram is found with a
// stack of increasing heights.
AverageImage::Rect LargestRectangle(const std::vector<unsigned char>& mask, int rows, int cols) {
  std::vector<int> heights(static_cast<std::size_t>(cols) + 1, 0);  // sentinel 0 at cols
  std::vector<int> stack;
  stack.reserve(static_cast<std::size_t>(cols) + 1);
  long best_area = 0;
  AverageImage::Rect best;
  for (int r = 0; r < rows; ++r) {
    const unsigned char* row = mask.data() + static_cast<std::size_t>(r) * cols;
    for (int c = 0; c < cols; ++c) heights[c] = row[c] ? heights[c] + 1 : 0;
    stack.clear();
    for (int c = 0; c <= cols; ++c) {
      while (!stack.empty() && heights[stack.back()] >= heights[c]) {
        const int h = heights[stack.back()];
        stack.pop_back();
        const int left = stack.empty() ? 0 : stack.back() + 1;
        const long area = static_cast<long>(h) * (c - left);
        if (area > best_area) {
          best_area = area;
          best = {r + 1 - h, r + 1, left, c};
        }
      }
      stack.push_back(c);
    }
  }
  return best;
}

}  // namespace

AverageImage::Rect BestCoveredRect(const int* counts, const int* second_counts, int rows, int cols,
                                   double min_fraction) {
  if (rows <= 0 || cols <= 0) return {};
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  int max_count = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const int c = counts[k] + (second_counts != nullptr ? second_counts[k] : 0);
    max_count = std::max(max_count, c);
  }
  if (max_count <= 0) return {};
  const int threshold = std::max(1, static_cast<int>(std::ceil(min_fraction * max_count - 1e-9)));
  std::vector<unsigned char> mask(n);
  bool both_sets = second_counts != nullptr;
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t k = 0; k < n; ++k) {
      const int a = counts[k], b = second_counts != nullptr ? second_counts[k] : 0;
      mask[k] = a + b >= threshold && (!both_sets || (a > 0 && b > 0));
    }
    const AverageImage::Rect rect = LargestRectangle(mask, rows, cols);
    // Without any pixel that both sets cover (e.g. a single frame), fall
    // back to the total count alone.
    if (!rect.Empty() || !both_sets) return rect;
    both_sets = false;
  }
  return {};
}

}  // namespace livealign
