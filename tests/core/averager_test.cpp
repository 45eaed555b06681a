#include "core/averager.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <memory>
#include <random>

#include "core/frame_store.hpp"
#include "tests/core/counting_frame_store.hpp"
#include "core/simulator.hpp"

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

// Noise-free frames of a smooth specimen (columns of sigma 2.5 px, well
// sampled, so bicubic interpolation error is small) with random drift.
SimulatedSeries SmoothSeries(int num_frames, Shape shape = {96, 128}) {
  SimulatorOptions options;
  options.shape = shape;
  options.column_sigma_px = 2.5;
  options.poisson_noise = false;
  options.dose_counts_per_px = 1.0;
  options.initial_velocity_px_per_frame = {0.9, -0.6};
  options.random_acceleration_px = 0.3;
  return Simulate(options, num_frames, 21);
}

double MaxAbsDiff(FrameView a, FrameView b) {
  double worst = 0;
  for (int r = 0; r < a.rows(); ++r)
    for (int c = 0; c < a.cols(); ++c) worst = std::max(worst, double(std::fabs(a.at(r, c) - b.at(r, c))));
  return worst;
}

TEST_CASE("averaging exactly shifted frames with the true shifts reproduces frame 0",
          "[core][averager]") {
  SimulatedSeries series = SmoothSeries(8);
  ShiftedAverager averager;
  const Frame frame0 = series.frames[0].Clone();
  for (int i = 0; i < 8; ++i) averager.AddFrame(std::move(series.frames[i]), series.true_shifts[i]);
  const AverageImage average = averager.Average();
  REQUIRE(average.num_included == 8);
  REQUIRE_FALSE(average.valid.Empty());
  const Frame reference = CropFrame(frame0, average.valid);
  double peak = 0;
  for (float v : reference.pixels()) peak = std::max(peak, double(v));
  // Bicubic on sigma = 2.5 px columns: error well under 1 % of the column peak.
  CAPTURE(average.valid, peak);
  REQUIRE(MaxAbsDiff(average.common, reference) < 0.01 * peak);
  // With wrong shifts (all zero) the same frames do not reproduce frame 0.
  ShiftedAverager unaligned;
  SimulatedSeries again = SmoothSeries(8);
  for (int i = 0; i < 8; ++i) unaligned.AddFrame(std::move(again.frames[i]), Shift{0, 0});
  const AverageImage blurred = unaligned.Average();
  REQUIRE(MaxAbsDiff(CropFrame(blurred.full, average.valid), reference) > 0.1 * peak);
}

TEST_CASE("valid rectangle and counts follow the shifts", "[core][averager]") {
  const Shape shape{20, 30};
  ShiftedAverager averager;
  averager.AddFrame(Frame(shape, std::vector<float>(600, 1.0f)), Shift{0, 0});
  SECTION("integer shifts") {
    // Frame 1 is read at p + (3, -2): covers cols [0, 27), rows [2, 20).
    averager.AddFrame(Frame(shape, std::vector<float>(600, 3.0f)), Shift{3, -2});
    const AverageImage average = averager.Average();
    REQUIRE(average.valid == (AverageImage::Rect{2, 20, 0, 27}));
    REQUIRE(average.common.shape() == (Shape{18, 27}));
    REQUIRE(average.counts.at(10, 10) == 2.0f);
    REQUIRE(average.counts.at(0, 10) == 1.0f);   // row 0 only frame 0
    REQUIRE(average.counts.at(10, 28) == 1.0f);  // col 28 only frame 0
    REQUIRE_THAT(average.full.at(10, 10), WithinAbs(2.0, 1e-6));
    REQUIRE_THAT(average.full.at(0, 10), WithinAbs(1.0, 1e-6));
  }
  SECTION("fractional shifts need all four taps inside") {
    // x = 1.5: taps at c + 0 .. c + 3 -> c in [0, 27); y = -0.25: floor -1,
    // taps r - 2 .. r + 1 -> r in [2, 19).
    averager.AddFrame(Frame(shape, std::vector<float>(600, 3.0f)), Shift{1.5, -0.25});
    const AverageImage average = averager.Average();
    REQUIRE(average.valid == (AverageImage::Rect{2, 19, 0, 27}));
    // A constant frame stays constant under interpolation (weights sum to 1).
    REQUIRE_THAT(average.full.at(10, 10), WithinAbs(2.0, 1e-6));
  }
  SECTION("a frame shifted out of view leaves no common region but joins the mosaic") {
    averager.AddFrame(Frame(shape, std::vector<float>(600, 3.0f)), Shift{100, 0});
    const AverageImage average = averager.Average();
    REQUIRE(average.valid.Empty());
    REQUIRE(average.common.shape().Pixels() == 0);
    REQUIRE(average.counts.at(5, 5) == 1.0f);
    // Frame 1 is read at p + (100, 0): it shows frame-0 columns [-100, -70).
    REQUIRE(average.mosaic_extent == (AverageImage::Rect{0, 20, -100, 30}));
    REQUIRE(average.mosaic_counts.at(5, 5) == 1.0f);           // column -95: frame 1
    REQUIRE(average.mosaic_counts.at(5, 50) == 0.0f);          // column -50: no frame
    REQUIRE_THAT(average.mosaic.at(5, 5), WithinAbs(3.0, 1e-6));
    REQUIRE_THAT(average.mosaic.at(5, 110), WithinAbs(1.0, 1e-6));  // column 10: frame 0
    // Best covered: one frame each, the first found (frame 1's footprint).
    REQUIRE(average.best_covered == (AverageImage::Rect{0, 20, -100, -70}));
    REQUIRE(average.best.shape() == (Shape{20, 30}));
  }
  SECTION("excluded frames do not count") {
    averager.AddFrame(Frame(shape, std::vector<float>(600, 3.0f)), Shift{3, -2}, false);
    const AverageImage average = averager.Average();
    REQUIRE(average.num_included == 1);
    REQUIRE(average.valid == (AverageImage::Rect{0, 20, 0, 30}));
    REQUIRE_THAT(average.full.at(10, 10), WithinAbs(1.0, 1e-6));
  }
}

TEST_CASE("incremental SetShift equals recomputation from scratch", "[core][averager]") {
  SimulatorOptions options;
  options.shape = {64, 64};
  SimulatedSeries noisy = Simulate(options, 10, 5);
  std::mt19937 rng(3);
  std::normal_distribution<double> jitter(0, 0.7);

  ShiftedAverager incremental;
  for (int i = 0; i < 10; ++i)
    incremental.AddFrame(noisy.frames[i].Clone(), Shift{jitter(rng), jitter(rng)});
  // Several rounds of solver updates: moves, exclusions, re-inclusions.
  std::vector<Shift> final_shifts(10);
  std::vector<bool> final_include(10);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 10; ++i) {
      const Shift s = noisy.true_shifts[i] + Shift{jitter(rng), jitter(rng)} * (round < 3 ? 1 : 0.001);
      const bool include = (i + round) % 4 != 0;
      incremental.SetShift(i, s, include);
      final_shifts[i] = s;
      final_include[i] = include;
    }
  }
  ShiftedAverager scratch;
  for (int i = 0; i < 10; ++i)
    scratch.AddFrame(noisy.frames[i].Clone(), incremental.applied_shift(i), final_include[i]);
  const AverageImage a = incremental.Average();
  const AverageImage b = scratch.Average();
  REQUIRE(a.num_included == b.num_included);
  REQUIRE(a.valid == b.valid);
  REQUIRE(MaxAbsDiff(a.full, b.full) < 1e-5);
  REQUIRE(MaxAbsDiff(a.counts, b.counts) == 0);
  // Reusing an output image gives the same result.
  AverageImage reused = scratch.HalfSetAverage(0);
  incremental.Average(&reused);
  REQUIRE(reused.valid == a.valid);
  REQUIRE(reused.common.pixels() == a.common.pixels());
  REQUIRE(reused.num_included == a.num_included);
  // Applied shifts of included frames lag requested ones by at most the tolerance.
  for (int i = 0; i < 10; ++i)
    if (final_include[i]) REQUIRE((incremental.applied_shift(i) - final_shifts[i]).Norm() <= 0.01 + 1e-12);

  SECTION("AverageOf with every frame equals Average") {
    ShiftedAverager exact(ShiftedAverager::Options{0.0});
    for (int i = 0; i < 10; ++i) exact.AddFrame(noisy.frames[i].Clone(), final_shifts[i], final_include[i]);
    const AverageImage from_scratch = exact.AverageOf(std::vector<bool>(10, true));
    REQUIRE(MaxAbsDiff(from_scratch.full, exact.Average().full) < 1e-5);
  }
}

TEST_CASE("shifts within the tolerance are not re-resampled", "[core][averager]") {
  SimulatorOptions options;
  options.shape = {32, 32};
  SimulatedSeries series = Simulate(options, 2, 1);
  ShiftedAverager averager;
  averager.AddFrame(std::move(series.frames[0]), Shift{0, 0});
  averager.AddFrame(std::move(series.frames[1]), Shift{1.0, 1.0});
  REQUIRE(averager.num_resamples() == 2);
  averager.SetShift(1, Shift{1.005, 1.0}, true);
  REQUIRE(averager.num_resamples() == 2);
  REQUIRE(averager.applied_shift(1) == (Shift{1.0, 1.0}));
  REQUIRE(averager.shift(1) == (Shift{1.005, 1.0}));
  averager.SetShift(1, Shift{1.02, 1.0}, true);  // moved: subtract + add
  REQUIRE(averager.num_resamples() == 4);
  averager.SetShift(1, Shift{1.02, 1.0}, false);  // excluded: subtract only
  REQUIRE(averager.num_resamples() == 5);
  REQUIRE(averager.num_included() == 1);
  averager.SetShift(1, Shift{1.02, 1.0}, true);  // back in: add
  REQUIRE(averager.num_resamples() == 6);
}

TEST_CASE("half-set and leave-one-out averages", "[core][averager]") {
  SimulatorOptions options;
  options.shape = {48, 40};
  SimulatedSeries series = Simulate(options, 7, 8);
  ShiftedAverager averager;
  for (int i = 0; i < 7; ++i) averager.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);

  std::vector<bool> even(7), odd(7);
  for (int i = 0; i < 7; ++i) (i % 2 == 0 ? even : odd)[i] = true;
  const AverageImage half0 = averager.HalfSetAverage(0), half1 = averager.HalfSetAverage(1);
  REQUIRE(half0.num_included == 4);
  REQUIRE(half1.num_included == 3);
  REQUIRE(MaxAbsDiff(half0.full, averager.AverageOf(even).full) < 1e-5);
  REQUIRE(MaxAbsDiff(half1.full, averager.AverageOf(odd).full) < 1e-5);

  std::vector<bool> all_but_3(7, true);
  all_but_3[3] = false;
  const AverageImage loo = averager.AverageExcluding(3);
  REQUIRE(loo.num_included == 6);
  REQUIRE(MaxAbsDiff(loo.full, averager.AverageOf(all_but_3).full) < 1e-5);
  REQUIRE(MaxAbsDiff(loo.counts, averager.AverageOf(all_but_3).counts) == 0);
  REQUIRE(loo.valid == averager.AverageOf(all_but_3).valid);

  // 7 frames of 48 x 40 floats + 2 x (double + int) running sums on the
  // canvas (which holds every footprint).
  const AverageImage::Rect canvas = averager.canvas();
  const std::size_t canvas_pixels = static_cast<std::size_t>(canvas.rows()) * canvas.cols();
  REQUIRE(canvas_pixels >= 1920u);
  REQUIRE(averager.FrameBytes() == 7u * 1920 * 4);
  REQUIRE(averager.MemoryBytes() == 7u * 1920 * 4 + 2u * canvas_pixels * (8 + 4));
}

TEST_CASE("the leave-one-out template in a frame's coordinates is the leave-one-out mean moved by its shift",
          "[core][averager]") {
  // Integer shifts: the resampling is a pure translation, so frame i's pixel q
  // holds the leave-one-out mean at frame-0 pixel q - s_i, and 0 where that
  // mean's taps leave the canvas.
  SimulatorOptions options;
  options.shape = {40, 48};
  SimulatedSeries series = Simulate(options, 5, 3);
  const std::vector<Shift> shifts{{0, 0}, {2, -1}, {-3, 2}, {1, 3}, {4, 1}};
  ShiftedAverager averager;
  for (int i = 0; i < 5; ++i) averager.AddFrame(series.frames[i].Clone(), shifts[i]);
  const int i = 2;
  const AverageImage loo = averager.AverageExcluding(i);
  ShiftedAverager::LeaveOneOutScratch scratch;
  Frame mean, in_frame;
  averager.LeaveOneOutMeanInFrame(i, &scratch, &mean, &in_frame);
  REQUIRE(in_frame.shape() == options.shape);
  int compared = 0;
  for (int r = 0; r < options.shape.rows; ++r) {
    for (int c = 0; c < options.shape.cols; ++c) {
      const int r0 = r - static_cast<int>(shifts[i].y), c0 = c - static_cast<int>(shifts[i].x);
      if (r0 < 0 || r0 >= options.shape.rows || c0 < 0 || c0 >= options.shape.cols) continue;
      CAPTURE(r, c);
      REQUIRE_THAT(in_frame.at(r, c), WithinAbs(loo.full.at(r0, c0), 1e-5));
      ++compared;
    }
  }
  REQUIRE(compared > options.shape.Pixels() / 2);
}

TEST_CASE("with a frame store only recent frames stay in RAM and old ones are read back",
          "[core][averager][frame_store]") {
  SimulatorOptions options;
  options.shape = {40, 48};
  options.initial_velocity_px_per_frame = {1.3, -0.7};
  SimulatedSeries series = Simulate(options, 12, 9);
  auto store = std::make_shared<CountingFrameStore>();
  ShiftedAverager::Options averager_options;
  averager_options.cache_frames = 3;
  ShiftedAverager cached(averager_options, store);
  ShiftedAverager all;  // no store: keeps every frame
  const std::size_t frame_bytes = 40u * 48 * sizeof(float);
  for (int i = 0; i < 12; ++i) {
    store->Put(i, "", series.frames[i], 0.0);
    cached.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);
    all.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);
    REQUIRE(cached.FrameBytes() == std::min<std::size_t>(i + 1, 3) * frame_bytes);
  }
  REQUIRE(all.FrameBytes() == 12 * frame_bytes);
  REQUIRE(store->gets() == 0);

  // A recent frame moves: no read-back. An old one: exactly one.
  cached.SetShift(11, series.true_shifts[11] + Shift{0.4, 0.1}, true);
  all.SetShift(11, series.true_shifts[11] + Shift{0.4, 0.1}, true);
  REQUIRE(store->gets() == 0);
  cached.SetShift(2, series.true_shifts[2] + Shift{-0.3, 0.5}, true);
  all.SetShift(2, series.true_shifts[2] + Shift{-0.3, 0.5}, true);
  REQUIRE(store->gets() == 1);
  REQUIRE(cached.num_store_reads() == 1);
  // Within the tolerance: nothing to re-resample, nothing read.
  cached.SetShift(3, series.true_shifts[3] + Shift{0.001, 0}, true);
  REQUIRE(store->gets() == 1);
  // Excluding an old frame subtracts it: one more read.
  cached.SetShift(4, series.true_shifts[4], false);
  all.SetShift(4, series.true_shifts[4], false);
  REQUIRE(store->gets() == 2);
  REQUIRE(cached.FrameBytes() == 3 * frame_bytes);  // read-backs are not cached

  // The read-back frames give the same average as the kept ones.
  const AverageImage a = cached.Average(), b = all.Average();
  REQUIRE(a.mosaic_extent == b.mosaic_extent);
  REQUIRE(a.mosaic.pixels() == b.mosaic.pixels());
  REQUIRE(a.full.pixels() == b.full.pixels());

  // The precision stage's template of an old frame reads it back once.
  ShiftedAverager::LeaveOneOutScratch scratch;
  Frame mean, in_frame_cached, in_frame_all;
  cached.LeaveOneOutMeanInFrame(0, &scratch, &mean, &in_frame_cached);
  REQUIRE(store->gets() == 3);
  all.LeaveOneOutMeanInFrame(0, &scratch, &mean, &in_frame_all);
  REQUIRE(in_frame_cached.pixels() == in_frame_all.pixels());
  REQUIRE(cached.frame(0)->pixels() == series.frames[0].pixels());
  REQUIRE(store->gets() == 4);
}

TEST_CASE("a frame the store cannot return leaves the averager unchanged",
          "[core][averager][frame_store]") {
  SimulatorOptions options;
  options.shape = {32, 32};
  SimulatedSeries series = Simulate(options, 4, 2);
  auto store = std::make_shared<MemoryFrameStore>();  // frame 0 never Put
  ShiftedAverager::Options averager_options;
  averager_options.cache_frames = 1;
  ShiftedAverager averager(averager_options, store);
  for (int i = 0; i < 4; ++i) {
    if (i > 0) store->Put(i, "", series.frames[i], 0.0);
    averager.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);
  }
  const AverageImage before = averager.Average();
  REQUIRE_THROWS_AS(averager.SetShift(0, Shift{0.5, 0.5}, true), std::out_of_range);
  REQUIRE(averager.applied_shift(0) == series.true_shifts[0]);
  REQUIRE(averager.Average().full.pixels() == before.full.pixels());
}

TEST_CASE("the mosaic keeps frames the drift carried away from frame 0",
          "[core][averager][mosaic]") {
  // 64^2 frames drifting 9 px/frame along x: from frame 8 on a frame no
  // longer overlaps frame 0, and the region every frame covers is empty.
  SimulatorOptions options;
  options.shape = {64, 64};
  options.initial_velocity_px_per_frame = {9.0, 0.5};
  options.random_acceleration_px = 0;
  SimulatedSeries series = Simulate(options, 14, 4);
  ShiftedAverager averager;
  for (int i = 0; i < 14; ++i) averager.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);
  const AverageImage average = averager.Average();
  REQUIRE(average.valid.Empty());
  REQUIRE(average.num_included == 14);
  // The mosaic spans about 64 + 13 * 9 columns.
  CAPTURE(average.mosaic_extent);
  REQUIRE(average.mosaic_extent.cols() >= 64 + 13 * 9 - 4);
  REQUIRE(average.mosaic.shape() == (Shape{average.mosaic_extent.rows(), average.mosaic_extent.cols()}));
  // Frame 13 contributes where no earlier frame covers: the far end of the mosaic.
  const Shift s13 = series.true_shifts[13];
  const int far_col = static_cast<int>(std::floor(-s13.x)) + 3 - average.mosaic_extent.col0;
  const int mid_row = 32 - average.mosaic_extent.row0;
  REQUIRE(average.mosaic_counts.at(mid_row, far_col) >= 1.0f);
  // The best-covered region: non-empty, at least half the highest count
  // everywhere, and both half sets cover it.
  REQUIRE(average.best_covered.rows() >= 32);
  REQUIRE(average.best_covered.cols() >= 16);
  float max_count = 0;
  for (float c : average.mosaic_counts.pixels()) max_count = std::max(max_count, c);
  const AverageImage even = averager.HalfSetAverage(0), odd = averager.HalfSetAverage(1);
  for (int r = average.best_covered.row0; r < average.best_covered.row1; ++r) {
    for (int c = average.best_covered.col0; c < average.best_covered.col1; ++c) {
      const float count = average.mosaic_counts.at(r - average.mosaic_extent.row0,
                                                   c - average.mosaic_extent.col0);
      REQUIRE(count >= 0.5f * max_count);
    }
  }
  REQUIRE(CropMosaic(even, average.best_covered).shape() == average.best.shape());
  REQUIRE(CropMosaic(odd, average.best_covered).shape() == average.best.shape());
  // Memory follows the drift extent: the canvas is far smaller than one
  // frame per added frame would be ... and holds every footprint.
  const AverageImage::Rect canvas = averager.canvas();
  REQUIRE(canvas.cols() >= average.mosaic_extent.cols());
  REQUIRE(canvas.rows() * canvas.cols() < 14 * 64 * 64);
}

TEST_CASE("averager misuse is refused", "[core][averager]") {
  ShiftedAverager averager;
  REQUIRE_THROWS_AS(averager.AddFrame(Frame(), Shift{}), std::invalid_argument);
  averager.AddFrame(Frame(Shape{4, 4}), Shift{});
  REQUIRE_THROWS_AS(averager.AddFrame(Frame(Shape{4, 5}), Shift{}), std::invalid_argument);
  REQUIRE_THROWS_AS(averager.AddFrame(Frame(Shape{4, 4}), Shift{std::nan(""), 0}),
                    std::invalid_argument);
  REQUIRE_THROWS_AS(averager.SetShift(1, Shift{}, true), std::invalid_argument);
  REQUIRE_THROWS_AS(averager.AverageOf({true, false}), std::invalid_argument);
  REQUIRE_THROWS_AS(ShiftedAverager(ShiftedAverager::Options{-1.0}), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
