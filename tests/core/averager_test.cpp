#include "core/averager.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <memory>
#include <random>

#include "core/frame_store.hpp"
#include "tests/core/counting_frame_store.hpp"
#include "core/simulator.hpp"
#include "core/thread_pool.hpp"

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

// 14 frames of 64^2 drifting 9 px/frame along x: from frame 8 on a frame no
// longer overlaps frame 0, and the region every frame covers is empty.
SimulatedSeries DriftingAwaySeries() {
  SimulatorOptions options;
  options.shape = {64, 64};
  options.initial_velocity_px_per_frame = {9.0, 0.5};
  options.random_acceleration_px = 0;
  return Simulate(options, 14, 4);
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

TEST_CASE("resampling by bands on a thread pool gives bit-identical sums", "[core][averager]") {
  // Frames tall enough to be cut into bands (4 tile rows and more), shifts
  // with fractions and negative parts, so bands start at odd source rows.
  SimulatorOptions options;
  options.shape = {300, 200};
  SimulatedSeries noisy = Simulate(options, 6, 8);
  ThreadPool pool(2);
  ShiftedAverager serial(ShiftedAverager::Options{0.0});
  ShiftedAverager banded(ShiftedAverager::Options{0.0});
  banded.SetThreadPool(&pool);
  const std::vector<Shift> shifts = {{0, 0}, {3.3, -70.6}, {-41.7, 12.2}, {0.5, 130.25},
                                     {-199.9, -5.5}, {17.01, 64.99}};
  for (int i = 0; i < 6; ++i) {
    serial.AddFrame(noisy.frames[i].Clone(), shifts[i]);
    banded.AddFrame(noisy.frames[i].Clone(), shifts[i]);
  }
  // Moves (subtract and add again) and an exclusion.
  for (int i = 1; i < 6; ++i) {
    const Shift moved = shifts[i] + Shift{0.37 * i, -0.61 * i};
    serial.SetShift(i, moved, i != 4);
    banded.SetShift(i, moved, i != 4);
  }
  const AverageImage a = serial.Average();
  const AverageImage b = banded.Average();
  REQUIRE(a.mosaic_extent == b.mosaic_extent);
  REQUIRE(a.mosaic.pixels() == b.mosaic.pixels());
  REQUIRE(a.mosaic_counts.pixels() == b.mosaic_counts.pixels());
  REQUIRE(serial.canvas() == banded.canvas());
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

  // 7 frames of 48 x 40 floats + the (double + int) running sums of both
  // parities, in whole tiles, each parity's covering at least one footprint.
  const std::size_t tile_bytes = TiledCanvas::kTileSize * TiledCanvas::kTileSize * (8 + 4);
  REQUIRE(averager.FrameBytes() == 7u * 1920 * 4);
  REQUIRE(averager.CanvasBytes() % tile_bytes == 0);
  REQUIRE(averager.CanvasBytes() >= 2u * 1920 * (8 + 4));
  REQUIRE(averager.MemoryBytes() == averager.FrameBytes() + averager.CanvasBytes());
}

TEST_CASE("the leave-one-out template in a frame's coordinates is the leave-one-out mean moved by its rounded shift",
          "[core][averager]") {
  // Frame i's pixel q holds the leave-one-out mean at frame-0 pixel q - s_i
  // (s_i rounded), and 0 where no other frame covers it.
  SimulatorOptions options;
  options.shape = {40, 48};
  SimulatedSeries series = Simulate(options, 5, 3);
  const std::vector<Shift> shifts{{0, 0}, {2, -1}, {-3, 2}, {1, 3}, {4, 1}};
  ShiftedAverager averager;
  for (int i = 0; i < 5; ++i) averager.AddFrame(series.frames[i].Clone(), shifts[i]);
  const int i = 2;
  const AverageImage loo = averager.AverageExcluding(i);
  ShiftedAverager::LeaveOneOutScratch scratch;
  Frame in_frame;
  const Shift whole = averager.LeaveOneOutMeanInFrame(i, &scratch, &in_frame);
  REQUIRE(whole == shifts[i]);
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

  // A fractional shift moves the template by the rounded shift only (never
  // interpolated): the same pixels, and the whole-pixel move is returned.
  averager.SetShift(i, shifts[i] + Shift{0.3, -0.4}, true);
  Frame fractional;
  REQUIRE(averager.LeaveOneOutMeanInFrame(i, &scratch, &fractional) == shifts[i]);
  REQUIRE(fractional.pixels() == in_frame.pixels());
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
  Frame in_frame_cached, in_frame_all;
  cached.LeaveOneOutMeanInFrame(0, &scratch, &in_frame_cached);
  REQUIRE(store->gets() == 3);
  all.LeaveOneOutMeanInFrame(0, &scratch, &in_frame_all);
  REQUIRE(in_frame_cached.pixels() == in_frame_all.pixels());
  REQUIRE(cached.frame(0)->pixels() == series.frames[0].pixels());
  REQUIRE(store->gets() == 4);
}

TEST_CASE("SetShifts rebuilds the sums when most frames moved, with the incremental result",
          "[core][averager]") {
  SimulatorOptions options;
  options.shape = {64, 64};
  SimulatedSeries noisy = Simulate(options, 12, 8);
  std::mt19937 rng(5);
  std::normal_distribution<double> jitter(0, 0.4);
  ShiftedAverager incremental, bulk;
  for (int i = 0; i < 12; ++i) {
    incremental.AddFrame(noisy.frames[i].Clone(), noisy.true_shifts[i]);
    bulk.AddFrame(noisy.frames[i].Clone(), noisy.true_shifts[i]);
  }
  auto compare = [&] {
    for (int i = 0; i < 12; ++i) {
      CAPTURE(i);
      REQUIRE(bulk.applied_shift(i) == incremental.applied_shift(i));
      REQUIRE(bulk.included(i) == incremental.included(i));
    }
    const AverageImage a = incremental.Average(), b = bulk.Average();
    REQUIRE(a.num_included == b.num_included);
    REQUIRE(a.valid == b.valid);
    REQUIRE(MaxAbsDiff(a.full, b.full) < 1e-5);
    REQUIRE(MaxAbsDiff(a.counts, b.counts) == 0);
    for (int parity = 0; parity < 2; ++parity) {
      REQUIRE(MaxAbsDiff(incremental.HalfSetAverage(parity).full, bulk.HalfSetAverage(parity).full) < 1e-5);
    }
  };

  SECTION("every frame moved, one excluded: a rebuild, one pass per contributing frame") {
    std::vector<ShiftedAverager::ShiftUpdate> updates;
    for (int i = 0; i < 12; ++i) {
      updates.push_back({i, noisy.true_shifts[i] + Shift{jitter(rng), jitter(rng)}, i != 5});
      incremental.SetShift(i, updates.back().shift, updates.back().include);
    }
    const long before = bulk.num_resamples();
    bulk.SetShifts(updates);
    CHECK(bulk.num_resamples() - before == 11);  // 2 x 11 + 1 passes incrementally
    compare();
    // Back in, and a move within the tolerance that must keep its applied shift.
    updates = {{5, noisy.true_shifts[5], true}, {6, updates[6].shift + Shift{0.004, 0}, true}};
    for (const auto& u : updates) incremental.SetShift(u.frame, u.shift, u.include);
    const long again = bulk.num_resamples();
    bulk.SetShifts(updates);
    CHECK(bulk.num_resamples() - again == 1);  // incremental: the re-included frame only
    compare();
  }
  SECTION("few frames moved: SetShift's passes") {
    std::vector<ShiftedAverager::ShiftUpdate> updates = {{3, noisy.true_shifts[3] + Shift{0.3, 0}, true}};
    incremental.SetShift(3, updates[0].shift, true);
    const long before = bulk.num_resamples();
    bulk.SetShifts(updates);
    CHECK(bulk.num_resamples() - before == 2);
    compare();
  }
  SECTION("a bad update changes nothing") {
    const AverageImage before = bulk.Average();
    REQUIRE_THROWS_AS(bulk.SetShifts({{0, Shift{0.2, 0}, true}, {12, Shift{}, true}}), std::invalid_argument);
    REQUIRE_THROWS_AS(bulk.SetShifts({{0, Shift{0.2, 0}, true}, {1, Shift{NAN, 0}, true}}),
                      std::invalid_argument);
    REQUIRE(bulk.applied_shift(0) == noisy.true_shifts[0]);
    REQUIRE(bulk.Average().full.pixels() == before.full.pixels());
  }
}

TEST_CASE("a rebuild that cannot read a frame back leaves the rest out until a later update",
          "[core][averager][frame_store]") {
  SimulatorOptions options;
  options.shape = {32, 32};
  SimulatedSeries series = Simulate(options, 6, 2);
  auto store = std::make_shared<MemoryFrameStore>();  // frame 2 is Put only later
  ShiftedAverager::Options averager_options;
  averager_options.cache_frames = 1;
  ShiftedAverager averager(averager_options, store);
  for (int i = 0; i < 6; ++i) {
    if (i != 2) store->Put(i, "", series.frames[i], 0.0);
    averager.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);
  }
  std::vector<ShiftedAverager::ShiftUpdate> updates;
  for (int i = 0; i < 6; ++i) updates.push_back({i, series.true_shifts[i] + Shift{0.25, -0.25}, true});
  REQUIRE_THROWS_AS(averager.SetShifts(updates), std::out_of_range);
  // Frames 0 and 1 are back in; 2 and later are not, and the sums say so.
  ShiftedAverager reference;
  for (int i = 0; i < 6; ++i) reference.AddFrame(series.frames[i].Clone(), updates[i].shift, i < 2);
  REQUIRE(averager.num_included() == 2);
  REQUIRE(MaxAbsDiff(averager.Average().full, reference.Average().full) < 1e-5);
  // Once the frame can be read, the same updates add every frame back.
  store->Put(2, "", series.frames[2], 0.0);
  averager.SetShifts(updates);
  ShiftedAverager all;
  for (int i = 0; i < 6; ++i) all.AddFrame(series.frames[i].Clone(), updates[i].shift);
  REQUIRE(averager.num_included() == 6);
  REQUIRE(MaxAbsDiff(averager.Average().full, all.Average().full) < 1e-5);
}

TEST_CASE("a rebuild on a thread pool reads each frame back beside the resampling of the one before",
          "[core][averager][frame_store]") {
  // Frames tall enough for bands (the read is one more task of a frame's
  // parallel loop), read back from a store, with one frame whose footprint
  // lies beyond the canvas limit: no band to run, and the next frame must be
  // read all the same.
  SimulatorOptions options;
  options.shape = {300, 200};
  SimulatedSeries series = Simulate(options, 7, 8);
  const std::vector<Shift> shifts = {{0, 0},      {3.3, -70.6}, {-41.7, 12.2}, {0.5, 130.25},
                                     {5000, 0.5}, {17.01, 64.99}, {-2.2, -3.3}};
  ThreadPool pool(2);
  ShiftedAverager::Options averager_options;
  averager_options.reresample_tolerance_px = 0.0;
  averager_options.cache_frames = 1;
  auto store = std::make_shared<CountingFrameStore>();
  ShiftedAverager banded(averager_options, store);
  banded.SetThreadPool(&pool);
  ShiftedAverager serial(ShiftedAverager::Options{0.0});
  for (int i = 0; i < 7; ++i) {
    store->Put(i, "", series.frames[i], 0.0);
    banded.AddFrame(series.frames[i].Clone(), shifts[i]);
    serial.AddFrame(series.frames[i].Clone(), shifts[i]);
  }
  std::vector<ShiftedAverager::ShiftUpdate> updates;
  for (int i = 0; i < 7; ++i) updates.push_back({i, shifts[i] + Shift{0.37 * i, -0.61 * i}, i != 2});
  const long resamples = banded.num_resamples();
  banded.SetShifts(updates);
  for (const auto& u : updates) serial.SetShift(u.frame, u.shift, u.include);
  REQUIRE(banded.num_resamples() - resamples == 6);  // a rebuild: one pass per included frame
  REQUIRE(store->gets() == 5);  // every included frame but the cached newest, once
  const AverageImage a = serial.Average(), b = banded.Average();
  REQUIRE(a.mosaic_extent == b.mosaic_extent);
  REQUIRE(MaxAbsDiff(a.mosaic, b.mosaic) < 1e-5);
  REQUIRE(a.mosaic_counts.pixels() == b.mosaic_counts.pixels());

  SECTION("a frame that cannot be read back is rethrown in its turn, the frames before it in") {
    auto partial = std::make_shared<MemoryFrameStore>();  // frame 3 is never Put
    ShiftedAverager averager(averager_options, partial);
    averager.SetThreadPool(&pool);
    for (int i = 0; i < 7; ++i) {
      if (i != 3) partial->Put(i, "", series.frames[i], 0.0);
      averager.AddFrame(series.frames[i].Clone(), shifts[i]);
    }
    REQUIRE_THROWS_AS(averager.SetShifts(updates), std::out_of_range);
    ShiftedAverager reference(ShiftedAverager::Options{0.0});
    for (int i = 0; i < 7; ++i) reference.AddFrame(series.frames[i].Clone(), updates[i].shift, i < 3 && i != 2);
    REQUIRE(averager.num_included() == 2);
    REQUIRE(MaxAbsDiff(averager.Average().mosaic, reference.Average().mosaic) < 1e-5);
  }
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
  const SimulatedSeries series = DriftingAwaySeries();
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

// Frames of distinct integer pixel values (row-major 1, 2, 3, ... plus an
// offset per frame), so with integer shifts every average is an exact mean of
// known pixels and a pixel taken from the wrong place shows.
Frame NumberedFrame(Shape shape, int frame_index) {
  Frame frame(shape);
  for (int k = 0; k < shape.Pixels(); ++k)
    frame.data()[k] = static_cast<float>(1000 * frame_index + k + 1);
  return frame;
}

// The average of integer-shifted frames computed pixel by pixel, independent
// of the averager's canvas: frame i covers frame-0 pixel p when p + s_i is
// inside it, the mean is that of double sums, and nothing lies beyond
// `limit` (the canvas limit) in the mosaic.
struct ReferenceAverage {
  AverageImage::Rect extent;
  std::vector<double> sum;
  std::vector<int> count;
};
ReferenceAverage Reference(Shape shape, const std::vector<Shift>& shifts,
                           const std::vector<bool>& include, const AverageImage::Rect& limit) {
  ReferenceAverage ref;
  for (std::size_t i = 0; i < shifts.size(); ++i) {
    if (!include[i]) continue;
    const int sx = static_cast<int>(shifts[i].x), sy = static_cast<int>(shifts[i].y);
    AverageImage::Rect fp{std::max(-sy, limit.row0), std::min(shape.rows - sy, limit.row1),
                          std::max(-sx, limit.col0), std::min(shape.cols - sx, limit.col1)};
    if (fp.Empty()) continue;
    if (ref.extent.Empty()) {
      ref.extent = fp;
    } else {
      ref.extent = {std::min(ref.extent.row0, fp.row0), std::max(ref.extent.row1, fp.row1),
                    std::min(ref.extent.col0, fp.col0), std::max(ref.extent.col1, fp.col1)};
    }
  }
  const std::size_t n = static_cast<std::size_t>(ref.extent.rows()) * ref.extent.cols();
  ref.sum.assign(n, 0.0);
  ref.count.assign(n, 0);
  for (std::size_t i = 0; i < shifts.size(); ++i) {
    if (!include[i]) continue;
    const Frame frame = NumberedFrame(shape, static_cast<int>(i));
    const int sx = static_cast<int>(shifts[i].x), sy = static_cast<int>(shifts[i].y);
    for (int r = ref.extent.row0; r < ref.extent.row1; ++r) {
      for (int c = ref.extent.col0; c < ref.extent.col1; ++c) {
        const int fr = r + sy, fc = c + sx;
        if (fr < 0 || fr >= shape.rows || fc < 0 || fc >= shape.cols) continue;
        const std::size_t k = static_cast<std::size_t>(r - ref.extent.row0) * ref.extent.cols() +
                              (c - ref.extent.col0);
        ref.sum[k] += frame.at(fr, fc);
        ++ref.count[k];
      }
    }
  }
  return ref;
}

// Bit-for-bit: the mosaic, its counts and extent, the frame-0 window.
void RequireMatchesReference(const AverageImage& average, const ReferenceAverage& ref,
                             Shape shape) {
  REQUIRE(average.mosaic_extent == ref.extent);
  int compared = 0;
  for (int r = 0; r < ref.extent.rows(); ++r) {
    for (int c = 0; c < ref.extent.cols(); ++c) {
      const std::size_t k = static_cast<std::size_t>(r) * ref.extent.cols() + c;
      const float mean =
          ref.count[k] > 0 ? static_cast<float>(ref.sum[k] / ref.count[k]) : 0.0f;
      CAPTURE(r + ref.extent.row0, c + ref.extent.col0);
      REQUIRE(average.mosaic_counts.at(r, c) == static_cast<float>(ref.count[k]));
      REQUIRE(average.mosaic.at(r, c) == mean);
      const int fr = r + ref.extent.row0, fc = c + ref.extent.col0;
      if (fr >= 0 && fr < shape.rows && fc >= 0 && fc < shape.cols) {
        REQUIRE(average.full.at(fr, fc) == mean);
        REQUIRE(average.counts.at(fr, fc) == static_cast<float>(ref.count[k]));
        ++compared;
      }
    }
  }
  REQUIRE(compared > 0);
}

TEST_CASE("the mean over a frame's footprint is the mosaic cropped to that footprint",
          "[core][averager][mosaic]") {
  // The newest frame's footprint is far from frame 0, at the far end of the
  // mosaic.
  const SimulatedSeries series = DriftingAwaySeries();
  ShiftedAverager averager;
  for (int i = 0; i < 14; ++i) averager.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);
  averager.SetShift(5, series.true_shifts[5], false);  // left out: covers nothing
  const AverageImage average = averager.Average();
  for (int i : {0, 7, 13}) {
    Frame mean, counts;
    averager.MeanOverFootprint(i, &mean, &counts);
    CAPTURE(i);
    // A whole frame less the interpolation margin.
    REQUIRE(mean.shape().rows >= 60);
    REQUIRE(mean.shape().cols >= 60);
    REQUIRE(mean.shape().rows <= 64);
    // Where it lies: frame i's content sits at p - shift in frame-0
    // coordinates; match the footprint to the mosaic by its counts and mean.
    const int row0 = static_cast<int>(std::ceil(-series.true_shifts[i].y)) - average.mosaic_extent.row0;
    const int col0 = static_cast<int>(std::ceil(-series.true_shifts[i].x)) - average.mosaic_extent.col0;
    double worst = 0;
    bool found = false;
    for (int dr = -2; dr <= 2 && !found; ++dr) {
      for (int dc = -2; dc <= 2 && !found; ++dc) {
        worst = 0;
        for (int r = 0; r < mean.shape().rows; ++r) {
          for (int c = 0; c < mean.shape().cols; ++c) {
            const int mr = row0 + dr + r, mc = col0 + dc + c;
            if (mr < 0 || mc < 0 || mr >= average.mosaic.shape().rows || mc >= average.mosaic.shape().cols) {
              worst = 1e9;
              continue;
            }
            worst = std::max({worst, double(std::fabs(mean.at(r, c) - average.mosaic.at(mr, mc))),
                              double(std::fabs(counts.at(r, c) - average.mosaic_counts.at(mr, mc)))});
          }
        }
        found = worst < 1e-4;
      }
    }
    REQUIRE(found);
  }
  Frame left_out;
  averager.MeanOverFootprint(5, &left_out);
  REQUIRE(left_out.shape().Empty());
  REQUIRE_THROWS_AS(averager.MeanOverFootprint(14, &left_out), std::invalid_argument);
}

TEST_CASE("the best-covered mean and the half-set means over a region are what the whole averages hold there",
          "[core][averager][mosaic]") {
  // The best-covered region lies away from frame 0, and some regions are
  // outside one half set's mosaic.
  const SimulatedSeries series = DriftingAwaySeries();
  ShiftedAverager averager;
  Frame best;
  REQUIRE(averager.BestCoveredMean(&best).Empty());  // nothing included yet
  REQUIRE(best.shape().Empty());
  for (int i = 0; i < 14; ++i) averager.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);
  averager.SetShift(13, series.true_shifts[13], false);  // the odd half set ends at frame 11

  const AverageImage average = averager.Average();
  const AverageImage::Rect region = averager.BestCoveredMean(&best);
  REQUIRE(region == average.best_covered);
  REQUIRE(region.rows() >= 32);
  REQUIRE(MaxAbsDiff(best, average.best) == 0);
  REQUIRE(averager.BestCoveredRegion() == region);
  std::vector<float> best_written(static_cast<std::size_t>(best.shape().Pixels()), -1.0f);
  averager.MeanOver(region, best_written.data());
  REQUIRE(MaxAbsDiff(FrameView(best_written.data(), best.shape()), best) == 0);

  for (int parity : {0, 1}) {
    CAPTURE(parity);
    const AverageImage half = averager.HalfSetAverage(parity);
    Frame mean;
    REQUIRE(averager.HalfSetMeanOver(parity, region, &mean));
    REQUIRE(MaxAbsDiff(mean, CropMosaic(half, region)) == 0);
    // Written into a caller's buffer (an FFT's input): the same pixels.
    std::vector<float> written(static_cast<std::size_t>(mean.shape().Pixels()), -1.0f);
    REQUIRE(averager.HalfSetMeanOver(parity, region, written.data()));
    REQUIRE(MaxAbsDiff(FrameView(written.data(), mean.shape()), mean) == 0);
    // A region reaching past the half set's mosaic is refused, and *mean kept.
    AverageImage::Rect beyond = half.mosaic_extent;
    beyond.col1 += 1;
    Frame untouched(Shape{2, 2});
    REQUIRE_FALSE(averager.HalfSetMeanOver(parity, beyond, &untouched));
    REQUIRE(untouched.shape() == (Shape{2, 2}));
    float sentinel = -1.0f;
    REQUIRE_FALSE(averager.HalfSetMeanOver(parity, beyond, &sentinel));
    REQUIRE(sentinel == -1.0f);
  }
  // Frame 12 (even) reaches further than frame 11 (odd): the even mosaic's
  // far end is outside the odd one.
  const AverageImage even = averager.HalfSetAverage(0), odd = averager.HalfSetAverage(1);
  REQUIRE(even.mosaic_extent.col0 < odd.mosaic_extent.col0);
  AverageImage::Rect far_end = even.mosaic_extent;
  far_end.col1 = far_end.col0 + 4;
  Frame mean;
  REQUIRE(averager.HalfSetMeanOver(0, far_end, &mean));
  REQUIRE_FALSE(averager.HalfSetMeanOver(1, far_end, &mean));
  REQUIRE_THROWS_AS(averager.HalfSetMeanOver(2, region, &mean), std::invalid_argument);
}

TEST_CASE("the tiled canvas grows in every direction across tile edges and keeps every pixel",
          "[core][averager][mosaic]") {
  // 50 x 70 frames (not a multiple of the tile) stepping out by 37 / 53 px
  // (co-prime with the tile side), so footprints start and end at every
  // offset within a tile; the walk goes right, down, left past frame 0 and
  // up past it, so the canvas grows on all four sides, many times.
  const Shape shape{50, 70};
  std::vector<Shift> shifts{{0, 0}};
  const Shift steps[4] = {{-53, 0}, {0, -37}, {53, 0}, {0, 37}};
  const int legs[4] = {3, 3, 6, 6};
  for (int leg = 0; leg < 4; ++leg)
    for (int n = 0; n < legs[leg]; ++n) shifts.push_back(shifts.back() + steps[leg]);
  const std::vector<bool> include(shifts.size(), true);
  ShiftedAverager::Options options;
  options.max_extent_frames = 8;  // never reached here
  ShiftedAverager averager(options);
  for (std::size_t i = 0; i < shifts.size(); ++i) {
    averager.AddFrame(NumberedFrame(shape, static_cast<int>(i)), shifts[i]);
    // After every growth step: the canvas covers the mosaic, which is exact.
    const AverageImage average = averager.Average();
    const AverageImage::Rect canvas = averager.canvas();
    REQUIRE(canvas.row0 <= average.mosaic_extent.row0);
    REQUIRE(canvas.row1 >= average.mosaic_extent.row1);
    REQUIRE(canvas.col0 <= average.mosaic_extent.col0);
    REQUIRE(canvas.col1 >= average.mosaic_extent.col1);
    const std::vector<Shift> so_far(shifts.begin(), shifts.begin() + static_cast<long>(i) + 1);
    RequireMatchesReference(average, Reference(shape, so_far, include, {-1000, 1000, -1000, 1000}),
                            shape);
  }
  const AverageImage average = averager.Average();
  // Left, right, above and below frame 0's window.
  REQUIRE(average.mosaic_extent.col0 < -100);
  REQUIRE(average.mosaic_extent.col1 > 150);
  REQUIRE(average.mosaic_extent.row0 < -70);
  REQUIRE(average.mosaic_extent.row1 > 100);
  // The half sets and a leave-one-out average read the same tiles.
  std::vector<bool> even(shifts.size()), all_but_5(shifts.size(), true);
  for (std::size_t i = 0; i < shifts.size(); i += 2) even[i] = true;
  all_but_5[5] = false;
  RequireMatchesReference(averager.HalfSetAverage(0), Reference(shape, shifts, even, {-1000, 1000, -1000, 1000}),
                          shape);
  RequireMatchesReference(averager.AverageExcluding(5),
                          Reference(shape, shifts, all_but_5, {-1000, 1000, -1000, 1000}), shape);
  RequireMatchesReference(averager.AverageOf(all_but_5),
                          Reference(shape, shifts, all_but_5, {-1000, 1000, -1000, 1000}), shape);
}

TEST_CASE("the canvas limit clips footprints on every side", "[core][averager][mosaic]") {
  // Limit 1 frame size beyond frame 0's window: rows [-30, 60), cols [-40, 80).
  const Shape shape{30, 40};
  ShiftedAverager::Options options;
  options.max_extent_frames = 1;
  ShiftedAverager averager(options);
  const std::vector<Shift> shifts{{0, 0}, {55, 0}, {-55, 0}, {0, 45}, {0, -45}, {500, 500}};
  const std::vector<bool> include(shifts.size(), true);
  for (std::size_t i = 0; i < shifts.size(); ++i)
    averager.AddFrame(NumberedFrame(shape, static_cast<int>(i)), shifts[i]);
  const AverageImage average = averager.Average();
  REQUIRE(average.mosaic_extent == (AverageImage::Rect{-30, 60, -40, 80}));
  RequireMatchesReference(average, Reference(shape, shifts, include, {-30, 60, -40, 80}), shape);
  // The frame far beyond the limit adds nothing, not even tiles near it.
  const AverageImage::Rect canvas = averager.canvas();
  REQUIRE(canvas.row0 >= -30 - TiledCanvas::kTileSize);
  REQUIRE(canvas.col1 <= 80 + TiledCanvas::kTileSize);
}

TEST_CASE("subtracting frames after the canvas grew restores exact zeros", "[core][averager][mosaic]") {
  const Shape shape{40, 48};
  SimulatorOptions sim;
  sim.shape = shape;
  SimulatedSeries series = Simulate(sim, 4, 6);
  // Fractional shifts, frames 1-3 far from frame 0 in three directions.
  const std::vector<Shift> shifts{{0, 0}, {-150.3, 0.6}, {0.25, 170.7}, {140.5, -90.2}};
  ShiftedAverager averager(ShiftedAverager::Options{0.0});
  for (int i = 0; i < 4; ++i) averager.AddFrame(series.frames[i].Clone(), shifts[i]);
  const AverageImage::Rect grown = averager.canvas();
  // Move each far frame back onto frame 0, then take frame 1 out entirely:
  // the tiles they left must hold exact zeros, as a fresh averager's do.
  averager.SetShift(1, Shift{0.4, -0.3}, false);
  averager.SetShift(2, Shift{1.25, 0.5}, true);
  averager.SetShift(3, Shift{-0.5, 2.0}, true);
  REQUIRE(averager.canvas() == grown);  // tiles are never freed
  ShiftedAverager fresh(ShiftedAverager::Options{0.0});
  fresh.AddFrame(series.frames[0].Clone(), shifts[0]);
  fresh.AddFrame(series.frames[1].Clone(), Shift{0.4, -0.3}, false);
  fresh.AddFrame(series.frames[2].Clone(), Shift{1.25, 0.5});
  fresh.AddFrame(series.frames[3].Clone(), Shift{-0.5, 2.0});
  const AverageImage a = averager.Average(), b = fresh.Average();
  REQUIRE(a.mosaic_extent == b.mosaic_extent);
  REQUIRE(a.mosaic_counts.pixels() == b.mosaic_counts.pixels());
  REQUIRE(a.valid == b.valid);
  // Frame 0 alone where the others do not reach: exactly its pixels.
  REQUIRE(a.full.at(39, 0) == series.frames[0].at(39, 0));
  // Elsewhere the same sums, up to the rounding of add-then-subtract.
  REQUIRE(MaxAbsDiff(a.mosaic, b.mosaic) < 1e-5);
  // Re-added far away, a frame finds zeros there: the mean is its own pixels.
  averager.SetShift(1, shifts[1], true);
  const AverageImage c = averager.Average();
  ShiftedAverager alone(ShiftedAverager::Options{0.0});
  alone.AddFrame(series.frames[1].Clone(), shifts[1]);
  const AverageImage d = alone.Average();
  const AverageImage::Rect far = d.mosaic_extent;
  REQUIRE(CropMosaic(c, far).pixels() == CropMosaic(d, far).pixels());
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
