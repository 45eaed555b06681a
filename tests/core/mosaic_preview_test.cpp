#include "core/mosaic_preview.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "core/averager.hpp"
#include "core/simulator.hpp"

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

// A 5 x 7 mosaic whose origin lies left of and above frame 0.
AverageImage SmallMosaic() {
  AverageImage image;
  image.mosaic_extent = {-2, 3, -3, 4};
  image.mosaic = Frame({5, 7});
  image.mosaic_counts = Frame({5, 7});
  for (int r = 0; r < 5; ++r) {
    for (int c = 0; c < 7; ++c) {
      image.mosaic.at(r, c) = static_cast<float>(10 * r + c);
      image.mosaic_counts.at(r, c) = static_cast<float>((r + c) % 4);  // 0 where no frame covers
    }
  }
  image.best_covered = {-1, 2, 0, 3};
  return image;
}

TEST_CASE("the mosaic preview is the count-weighted mean and the fewest count of each bin",
          "[core][mosaic_preview]") {
  const AverageImage image = SmallMosaic();
  const MosaicPreview preview = MakeMosaicPreview(image, {3, 4}, 3);
  REQUIRE(preview.bin == 3);  // ceil(7 / 3)
  REQUIRE(preview.extent == image.mosaic_extent);
  REQUIRE(preview.mean.shape() == (Shape{2, 3}));  // the last row and column of bins are partial
  REQUIRE(preview.min_counts.size() == 6u);
  for (int pr = 0; pr < 2; ++pr) {
    for (int pc = 0; pc < 3; ++pc) {
      double weighted = 0, weight = 0;
      float fewest = 1e9f;
      for (int r = 3 * pr; r < std::min(5, 3 * pr + 3); ++r) {
        for (int c = 3 * pc; c < std::min(7, 3 * pc + 3); ++c) {
          weighted += image.mosaic.at(r, c) * image.mosaic_counts.at(r, c);
          weight += image.mosaic_counts.at(r, c);
          fewest = std::min(fewest, image.mosaic_counts.at(r, c));
        }
      }
      CAPTURE(pr, pc);
      REQUIRE(weight > 0);
      REQUIRE_THAT(preview.mean.at(pr, pc), WithinAbs(weighted / weight, 1e-5));
      REQUIRE(preview.min_counts[static_cast<std::size_t>(pr) * 3 + pc] == static_cast<std::uint16_t>(fewest));
    }
  }
  // Rectangles rounded outward into preview pixels: best covered rows
  // [-1, 2) are mosaic rows [1, 4) (bins 0 and 1), columns [0, 3) are mosaic
  // columns [3, 6) (bin 1 alone); frame 0's window [0, 3) x [0, 4) is mosaic
  // [2, 5) x [3, 7) (bins 0, 1 and 1, 2).
  REQUIRE(preview.best_covered == (AverageImage::Rect{0, 2, 1, 2}));
  REQUIRE(preview.window == (AverageImage::Rect{0, 2, 1, 3}));
}

TEST_CASE("a mosaic within the bound is sent as it is, and an empty one as nothing",
          "[core][mosaic_preview]") {
  const AverageImage image = SmallMosaic();
  const MosaicPreview preview = MakeMosaicPreview(image, {3, 4}, 7);
  REQUIRE(preview.bin == 1);
  REQUIRE(preview.mean.shape() == image.mosaic.shape());
  for (int r = 0; r < 5; ++r) {
    for (int c = 0; c < 7; ++c) {
      // Uncovered pixels are 0, as in the mosaic's own convention.
      const float expected = image.mosaic_counts.at(r, c) > 0 ? image.mosaic.at(r, c) : 0.0f;
      REQUIRE(preview.mean.at(r, c) == expected);
    }
  }
  REQUIRE(preview.best_covered == (AverageImage::Rect{1, 4, 3, 6}));
  REQUIRE(preview.window == (AverageImage::Rect{2, 5, 3, 7}));

  const MosaicPreview empty = MakeMosaicPreview(AverageImage{}, {3, 4}, 7);
  REQUIRE(empty.mean.pixels().empty());
  REQUIRE(empty.min_counts.empty());
  REQUIRE(empty.extent.Empty());
  REQUIRE_THROWS_AS(MakeMosaicPreview(image, {3, 4}, 0), std::invalid_argument);
}

TEST_CASE("the preview of a drift beyond the frame is bounded and holds the far frames",
          "[core][mosaic_preview]") {
  SimulatorOptions options;
  options.shape = {64, 64};
  options.initial_velocity_px_per_frame = {9.0, 0.5};
  options.random_acceleration_px = 0;
  const SimulatedSeries series = Simulate(options, 14, 4);
  ShiftedAverager averager;
  for (int i = 0; i < 14; ++i) averager.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);
  const AverageImage average = averager.Average();
  REQUIRE(average.mosaic_extent.cols() > 150);

  const MosaicPreview preview = MakeMosaicPreview(average, {64, 64}, 64);
  REQUIRE(preview.bin == 3);
  REQUIRE(std::max(preview.mean.rows(), preview.mean.cols()) <= 64);
  // Its total signal is the mosaic's: every frame sample is in exactly one bin.
  double mosaic_sum = 0, preview_sum = 0;
  for (int r = 0; r < average.mosaic.rows(); ++r)
    for (int c = 0; c < average.mosaic.cols(); ++c)
      mosaic_sum += double(average.mosaic.at(r, c)) * average.mosaic_counts.at(r, c);
  for (int r = 0; r < preview.mean.rows(); ++r) {
    for (int c = 0; c < preview.mean.cols(); ++c) {
      double weight = 0;
      for (int mr = 3 * r; mr < std::min(average.mosaic.rows(), 3 * r + 3); ++mr)
        for (int mc = 3 * c; mc < std::min(average.mosaic.cols(), 3 * c + 3); ++mc)
          weight += average.mosaic_counts.at(mr, mc);
      preview_sum += double(preview.mean.at(r, c)) * weight;
    }
  }
  REQUIRE_THAT(preview_sum, WithinAbs(mosaic_sum, 1e-6 * std::fabs(mosaic_sum)));
  // Frame 13, far beyond frame 0's window, is in the preview: the bins it
  // alone covers have a count of at least 1 and lie left of the window.
  const int far_col = (static_cast<int>(std::floor(-series.true_shifts[13].x)) + 3 - average.mosaic_extent.col0) / 3;
  REQUIRE(far_col < preview.window.col0);
  REQUIRE(preview.min_counts[static_cast<std::size_t>(preview.mean.rows() / 2) * preview.mean.cols() + far_col] >= 1);
}

}  // namespace
}  // namespace livealign
