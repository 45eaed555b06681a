#include "core/drift_prediction.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

// A trace of n frames, frame i at time t0 + i * dt with specimen position drift(t).
DriftTrace Trace(int n, const std::function<Shift(double)>& drift, double dt = 0.5, double t0 = 3.0) {
  DriftTrace trace;
  for (int i = 0; i < n; ++i) {
    const double t = t0 + i * dt;
    trace.frame_indices.push_back(i);
    trace.timestamps_s.push_back(t);
    trace.shifts_px.push_back(drift(t));
  }
  return trace;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST_CASE("a linear drift is extrapolated exactly to the next frame's time", "[drift_prediction]") {
  const DriftTrace trace = Trace(6, [](double t) { return Shift{0.8 * t - 2.4, -0.3 * t + 0.9}; });
  const DriftPrediction p = PredictNextShift(trace);
  REQUIRE(p.valid);
  CHECK(p.for_frame == 6);
  CHECK_THAT(p.for_time_s, WithinAbs(6.0, 1e-12));
  CHECK_THAT(p.shift_px.x, WithinAbs(0.8 * 6.0 - 2.4, 1e-9));
  CHECK_THAT(p.shift_px.y, WithinAbs(-0.3 * 6.0 + 0.9, 1e-9));
  CHECK_THAT(p.velocity_px_per_frame.x, WithinAbs(0.4, 1e-9));
  CHECK_THAT(p.sigma_px, WithinAbs(0.0, 1e-9));
  CHECK(p.frames_used == 6);
}

TEST_CASE("only the last window_frames frames are fitted", "[drift_prediction]") {
  // The drift turns at t = 5: frames before the window must not bend the line.
  const DriftTrace trace = Trace(30, [](double t) { return t < 5 ? Shift{t, 0} : Shift{5 - 2 * (t - 5), 0}; });
  DriftPredictionOptions options;
  options.window_frames = 8;
  const DriftPrediction p = PredictNextShift(trace, options);
  const double t_next = 3.0 + 30 * 0.5;
  CHECK_THAT(p.shift_px.x, WithinAbs(5 - 2 * (t_next - 5), 1e-9));
  CHECK(p.frames_used == 8);
  options.window_frames = 30;  // the whole trace: the turn bends the fit
  CHECK(std::abs(PredictNextShift(trace, options).shift_px.x - (5 - 2 * (t_next - 5))) > 0.5);
}

TEST_CASE("excluded frames are left out and heavy residuals weigh less", "[drift_prediction]") {
  DriftTrace trace = Trace(10, [](double t) { return Shift{0.2 * t, 0.1 * t}; });
  trace.shifts_px[7] = Shift{9, -9};  // a wrong shift
  const double x_true = 0.2 * (3.0 + 10 * 0.5);
  CHECK(std::abs(PredictNextShift(trace).shift_px.x - x_true) > 0.5);
  trace.excluded.assign(10, false);
  trace.excluded[7] = true;
  DriftPrediction p = PredictNextShift(trace);
  CHECK_THAT(p.shift_px.x, WithinAbs(x_true, 1e-9));
  CHECK(p.frames_used == 9);
  trace.excluded.clear();
  trace.residual_px.assign(10, 0.05);
  trace.residual_px[7] = 50.0;  // its pairs disagree: a millionth of the weight
  CHECK_THAT(PredictNextShift(trace).shift_px.x, WithinAbs(x_true, 1e-3));
}

TEST_CASE("scan offsets are added back: the prediction is the specimen position", "[drift_prediction]") {
  const auto drift = [](double t) { return Shift{0.5 * t, -0.25 * t}; };
  DriftTrace open_loop = Trace(8, drift);
  DriftTrace closed_loop = open_loop;
  std::mt19937 rng(4);
  std::uniform_real_distribution<double> offset(-3, 3);
  for (std::size_t i = 0; i < closed_loop.shifts_px.size(); ++i) {
    const Shift o{offset(rng), offset(rng)};
    closed_loop.scan_offsets_px.push_back(o);
    closed_loop.shifts_px[i] -= o;  // a scan moved by o sees the feature o earlier
  }
  const DriftPrediction a = PredictNextShift(open_loop), b = PredictNextShift(closed_loop);
  CHECK_THAT(b.shift_px.x, WithinAbs(a.shift_px.x, 1e-9));
  CHECK_THAT(b.shift_px.y, WithinAbs(a.shift_px.y, 1e-9));
}

TEST_CASE("without timestamps the fit runs on frame indices, gaps included", "[drift_prediction]") {
  DriftTrace trace;
  trace.frame_indices = {0, 1, 2, 4, 5};
  for (frame_id_t i : trace.frame_indices) trace.shifts_px.push_back(Shift{0.3 * i, 0});
  trace.timestamps_s = {0, 1, std::nan(""), 4, 5};  // one unknown: indices
  const DriftPrediction p = PredictNextShift(trace);
  REQUIRE(p.valid);
  CHECK(p.for_frame == 6);
  CHECK(std::isnan(p.for_time_s));
  CHECK_THAT(p.shift_px.x, WithinAbs(1.8, 1e-9));
}

TEST_CASE("too short traces give no prediction; mismatched vectors throw", "[drift_prediction]") {
  CHECK_FALSE(PredictNextShift(DriftTrace{}).valid);
  DriftTrace one = Trace(1, [](double) { return Shift{}; });
  DriftPrediction p = PredictNextShift(one);
  CHECK_FALSE(p.valid);
  CHECK(p.for_frame == 1);
  DriftTrace two = Trace(2, [](double t) { return Shift{t, 0}; });
  p = PredictNextShift(two);
  CHECK(p.valid);
  CHECK(std::isnan(p.sigma_px));  // a line through two points has no scatter
  two.residual_px = {0.1};
  CHECK_THROWS_AS(PredictNextShift(two), std::invalid_argument);
  DriftPredictionOptions bad;
  bad.window_frames = 1;
  CHECK_THROWS_AS(PredictNextShift(Trace(3, [](double) { return Shift{}; }), bad), std::invalid_argument);
}

TEST_CASE("sigma covers about 68 % of the next-frame errors per axis", "[drift_prediction]") {
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0.0, 0.1);
  int inside = 0, total = 0;
  for (int trial = 0; trial < 1000; ++trial) {
    DriftTrace trace = Trace(11, [](double t) { return Shift{0.4 * t, -0.2 * t}; });
    for (Shift& s : trace.shifts_px) s += Shift{noise(rng), noise(rng)};
    const Shift truth = trace.shifts_px.back();  // the 11th frame is the one to predict
    trace.frame_indices.pop_back();
    trace.timestamps_s.pop_back();
    trace.shifts_px.pop_back();
    const DriftPrediction p = PredictNextShift(trace);
    inside += (std::abs(p.shift_px.x - truth.x) < p.sigma_px) + (std::abs(p.shift_px.y - truth.y) < p.sigma_px);
    total += 2;
  }
  const double fraction = static_cast<double>(inside) / total;
  INFO("fraction within 1 sigma " << fraction);
  CHECK(fraction > 0.58);
  CHECK(fraction < 0.78);
}

TEST_CASE("smooth drift: the median next-frame error is a small part of the drift per frame",
          "[drift_prediction]") {
  // Thermal creep settling exponentially (time constant 20 frames) from 1.2
  // px/frame, shifts measured with 0.03 px noise: prediction from frames
  // 0..i-1, compared with frame i's noise-free position.
  const auto creep = [](double i) { return Shift{24.0 * (1 - std::exp(-i / 20.0)), -12.0 * (1 - std::exp(-i / 20.0))}; };
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, 0.03);
  DriftTrace trace;
  std::vector<double> errors, steps;
  for (int i = 0; i < 60; ++i) {
    if (i >= 3) {
      const DriftPrediction p = PredictNextShift(trace);
      errors.push_back((p.shift_px - creep(i)).Norm());
      steps.push_back((creep(i) - creep(i - 1)).Norm());
    }
    trace.frame_indices.push_back(i);
    trace.timestamps_s.push_back(0.25 * i);
    trace.shifts_px.push_back(creep(i) + Shift{noise(rng), noise(rng)});
  }
  const double median_error = Median(errors), median_step = Median(steps);
  WARN("smooth drift: median next-frame prediction error " << median_error << " px, median drift "
       << median_step << " px/frame (" << 100 * median_error / median_step << " %)");
  CHECK(median_error < 0.35 * median_step);
}

}  // namespace
}  // namespace livealign
