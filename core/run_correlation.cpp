#include "core/run_correlation.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace livealign {
namespace {

int Wrap(int i, int n) { return ((i % n) + n) % n; }

}  // namespace

std::vector<double> RunCorrelationAtOffsets(const RunImages& first, const RunImages& second, Shape grid,
                                            Shift px_per_cell, const std::vector<Shift>& offsets) {
  const int rows = grid.rows, cols = grid.cols;
  const std::size_t cells = static_cast<std::size_t>(grid.Pixels());
  std::vector<double> heights;
  heights.reserve(offsets.size());
  if (cells == 0) {
    heights.assign(offsets.size(), 0.0);
    return heights;
  }
  const float first_floor = 0.5f * *std::max_element(first.weight, first.weight + cells);
  const float second_floor = 0.5f * *std::max_element(second.weight, second.weight + cells);
  if (!(first_floor > 0) || !(second_floor > 0)) {
    heights.assign(offsets.size(), 0.0);
    return heights;
  }
  std::vector<int> cols0(static_cast<std::size_t>(cols)), cols1(static_cast<std::size_t>(cols));
  std::vector<Eigen::Vector3d> basis;  // (1, x, y) of each cell in the region
  std::vector<double> va, vb;
  for (const Shift& v : offsets) {
    const double gx = v.x / px_per_cell.x, gy = v.y / px_per_cell.y;
    const int ix = static_cast<int>(std::floor(gx)), iy = static_cast<int>(std::floor(gy));
    const double fx = gx - ix, fy = gy - iy;
    for (int c = 0; c < cols; ++c) {
      cols0[static_cast<std::size_t>(c)] = Wrap(c + ix, cols);
      cols1[static_cast<std::size_t>(c)] = Wrap(c + ix + 1, cols);
    }
    basis.clear();
    va.clear();
    vb.clear();
    for (int r = 0; r < rows; ++r) {
      const std::size_t row0 = static_cast<std::size_t>(Wrap(r + iy, rows)) * cols;
      const std::size_t row1 = static_cast<std::size_t>(Wrap(r + iy + 1, rows)) * cols;
      for (int c = 0; c < cols; ++c) {
        const std::size_t p = static_cast<std::size_t>(r) * cols + c;
        if (!(first.weight[p] > first_floor)) continue;
        const std::size_t c0 = static_cast<std::size_t>(cols0[static_cast<std::size_t>(c)]);
        const std::size_t c1 = static_cast<std::size_t>(cols1[static_cast<std::size_t>(c)]);
        const auto sample = [&](const float* m) {
          return (1 - fy) * ((1 - fx) * m[row0 + c0] + fx * m[row0 + c1]) +
                 fy * ((1 - fx) * m[row1 + c0] + fx * m[row1 + c1]);
        };
        const double weight = sample(second.weight);
        if (!(weight > second_floor)) continue;
        basis.emplace_back(1.0, c - 0.5 * cols, r - 0.5 * rows);
        va.push_back(first.content[p] / first.weight[p]);
        vb.push_back(sample(second.content) / weight);
      }
    }
    if (basis.size() < cells / 16) {  // too little in common to say anything
      heights.push_back(0.0);
      continue;
    }
    // A plane removed from each. A quadratic surface instead changed nothing
    // on simulated stage jumps; a cubic one made one of them confidently wrong.
    Eigen::Matrix3d normal = Eigen::Matrix3d::Zero();
    Eigen::Vector3d rhs_a = Eigen::Vector3d::Zero(), rhs_b = Eigen::Vector3d::Zero();
    for (std::size_t q = 0; q < basis.size(); ++q) {
      normal += basis[q] * basis[q].transpose();
      rhs_a += basis[q] * va[q];
      rhs_b += basis[q] * vb[q];
    }
    const Eigen::LDLT<Eigen::Matrix3d> fit(normal);
    const Eigen::Vector3d plane_a = fit.solve(rhs_a);
    const Eigen::Vector3d plane_b = fit.solve(rhs_b);
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t q = 0; q < basis.size(); ++q) {
      const double ra = va[q] - plane_a.dot(basis[q]);
      const double rb = vb[q] - plane_b.dot(basis[q]);
      ab += ra * rb;
      aa += ra * ra;
      bb += rb * rb;
    }
    heights.push_back(aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0);
  }
  return heights;
}

}  // namespace livealign
