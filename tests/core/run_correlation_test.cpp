#include "core/run_correlation.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace livealign {
namespace {

constexpr int kGrid = 64;

// Two Gaussian blobs whose centres sit at (cx, cy) and (cx + 9, cy - 6) grid
// cells (cyclic), plus a ramp gx x + gy y about the grid's centre.
std::vector<float> Blobs(double cx, double cy, double gx = 0, double gy = 0) {
  std::vector<float> image(static_cast<std::size_t>(kGrid) * kGrid);
  for (int r = 0; r < kGrid; ++r) {
    for (int c = 0; c < kGrid; ++c) {
      double value = gx * (c - kGrid / 2) + gy * (r - kGrid / 2);
      for (const auto& [x, y, sigma] : {std::tuple{cx, cy, 4.0}, std::tuple{cx + 9, cy - 6, 3.0}}) {
        const double dx = std::remainder(c - x, kGrid), dy = std::remainder(r - y, kGrid);
        value += std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
      }
      image[static_cast<std::size_t>(r) * kGrid + c] = static_cast<float>(value);
    }
  }
  return image;
}

std::size_t Best(const std::vector<double>& heights) {
  return static_cast<std::size_t>(std::max_element(heights.begin(), heights.end()) - heights.begin());
}

TEST_CASE("the run correlation peaks where the second run's content lies", "[core][run_correlation]") {
  const Shape grid{kGrid, kGrid};
  // Weight 1 in the middle 48 x 48 cells, as summed frames cover the middle
  // of the grid and not its edges.
  std::vector<float> ones(static_cast<std::size_t>(kGrid) * kGrid, 0.0f);
  for (int r = 8; r < 56; ++r)
    for (int c = 8; c < 56; ++c) ones[static_cast<std::size_t>(r) * kGrid + c] = 1.0f;
  // The second run's content sits 5 cells right and 3 down of the first's:
  // read at x + (5, 3) cells it matches. 2 px per cell.
  const std::vector<float> first = Blobs(30, 32), second = Blobs(35, 35);
  const std::vector<Shift> offsets{{0, 0}, {10, 6}, {-10, -6}, {10, 0}, {0, 6}, {11, 7}};
  const std::vector<double> heights =
      RunCorrelationAtOffsets({first.data(), ones.data()}, {second.data(), ones.data()}, grid, {2, 2}, offsets);
  REQUIRE(heights.size() == offsets.size());
  CHECK(Best(heights) == 1);
  CHECK(heights[1] == Approx(1.0).margin(1e-6));
  // Half a cell off (interpolated) is close, but lower.
  CHECK(heights[5] < heights[1]);
  CHECK(heights[5] > 0.9);

  // A ramp in one run only (a thickness gradient) changes nothing: each
  // run's plane is removed.
  const std::vector<float> ramped = Blobs(35, 35, 0.05, -0.03);
  const std::vector<double> with_ramp =
      RunCorrelationAtOffsets({first.data(), ones.data()}, {ramped.data(), ones.data()}, grid, {2, 2}, offsets);
  for (std::size_t n = 0; n < offsets.size(); ++n) CHECK(with_ramp[n] == Approx(heights[n]).margin(1e-3));

  // Content divided by its weight: a run summed with twice the weight
  // everywhere (twice the frames) is the same mean.
  std::vector<float> twice = second, twos = ones;
  for (float& v : twice) v *= 2;
  for (float& v : twos) v *= 2;
  const std::vector<double> doubled =
      RunCorrelationAtOffsets({first.data(), ones.data()}, {twice.data(), twos.data()}, grid, {2, 2}, offsets);
  for (std::size_t n = 0; n < offsets.size(); ++n) CHECK(doubled[n] == Approx(heights[n]).margin(1e-6));
}

TEST_CASE("the run correlation is 0 where the runs have too little in common", "[core][run_correlation]") {
  const Shape grid{kGrid, kGrid};
  const std::vector<float> content = Blobs(30, 32);
  // Each run covers only a 12-cell square (weight 1 there, 0 elsewhere); at
  // zero offset they share 144 cells, under 1/16 of the grid (256).
  std::vector<float> weight(static_cast<std::size_t>(kGrid) * kGrid, 0.0f);
  for (int r = 26; r < 38; ++r)
    for (int c = 26; c < 38; ++c) weight[static_cast<std::size_t>(r) * kGrid + c] = 1.0f;
  const std::vector<double> heights = RunCorrelationAtOffsets(
      {content.data(), weight.data()}, {content.data(), weight.data()}, grid, {2, 2}, {{0, 0}, {40, 0}});
  CHECK(heights == std::vector<double>{0.0, 0.0});
  // No weight at all.
  const std::vector<float> none(static_cast<std::size_t>(kGrid) * kGrid, 0.0f);
  CHECK(RunCorrelationAtOffsets({content.data(), none.data()}, {content.data(), weight.data()}, grid, {2, 2},
                                {{0, 0}}) == std::vector<double>{0.0});
}

}  // namespace
}  // namespace livealign
