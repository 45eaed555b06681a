#pragma once
// Drift prediction for scan feedback: where the next frame will be, from the
// recent shift trace, so a scan can move its field of view before acquiring it.
//
// The specimen position of frame i (relative to frame 0, the shifts.csv
// convention of core/shift.hpp) is d_i = s_i + o_i: the measured shift s_i
// plus the field-of-view offset o_i the scan applied to that frame (a scan
// moved by o shows a feature at p + d - o; o = 0 without feedback). A
// straight line d(t) = a + b t, and with six frames or more also a parabola,
// is fitted by weighted least squares to the last `window_frames` frames that
// are not excluded and evaluated at the next frame's expected time; of the
// two, the one with the smaller predicted error (residual scatter propagated
// to the extrapolation) is kept. A scan offset of the predicted d for the
// next frame keeps the specimen where it was in frame 0.
//
// The line averages shift noise best but lags a curving drift (thermal
// creep, piezo relaxation) by about its curvature times the window squared;
// the parabola follows the curve at the price of a noisier extrapolation.
// Comparing the two predicted errors picks the right one for the series.
//
// Pure function, thread-safe.
//
//   DriftTrace trace;                         // one entry per registered frame
//   trace.frame_indices = {0, 1, 2};
//   trace.shifts_px = {{0, 0}, {0.5, 0}, {1.0, 0}};
//   trace.timestamps_s = {0, 1, 2};
//   DriftPrediction p = PredictNextShift(trace);   // p.shift_px ~ (1.5, 0), frame 3

#include <cmath>
#include <string>
#include <vector>

#include "core/frame.hpp"
#include "core/shift.hpp"

namespace livealign {

struct DriftPredictionOptions {
  // Frames fitted: longer averages more noise, shorter follows curvature.
  // The engine passes its drift_window_frames.
  int window_frames = 10;
  // A frame's weight is 1 / max(residual_px, this)^2: frames whose pairs
  // disagree count less, and no frame counts infinitely.
  double residual_floor_px = 0.05;

  bool Check(std::string* error) const;
};

// The registered frames of a series, in acceptance order. Every vector other
// than frame_indices and shifts_px may be empty (= unknown for all frames).
struct DriftTrace {
  std::vector<frame_id_t> frame_indices;  // wire index of each frame, increasing
  std::vector<Shift> shifts_px;           // s_i, measured
  std::vector<double> timestamps_s;       // NaN where unknown
  std::vector<double> residual_px;        // consistency residual (weights); NaN = floor
  std::vector<bool> excluded;             // flagged frames are left out of the fit
  std::vector<Shift> scan_offsets_px;     // o_i the scan applied; (0, 0) without feedback
};

struct DriftPrediction {
  bool valid = false;                  // at least two usable frames
  frame_id_t for_frame = kInvalidFrameId;  // the latest index + 1
  // Expected time of that frame: the latest time plus the median time per
  // index step in the window; NaN when the fit runs on frame indices (some
  // timestamps unknown or not increasing).
  double for_time_s = std::nan("");
  Shift shift_px{std::nan(""), std::nan("")};  // predicted d of for_frame
  // One standard deviation of the prediction error per axis: the fit's
  // residual scatter (pooled over x and y) propagated to the extrapolation.
  // NaN with fewer than three usable frames.
  double sigma_px = std::nan("");
  // The fit's slope at for_frame, per index step.
  Shift velocity_px_per_frame{std::nan(""), std::nan("")};
  int fit_degree = 0;  // 1 line, 2 parabola; 0 when not valid
  int frames_used = 0;
};

// Throws std::invalid_argument when options.Check() fails, when shifts_px and
// frame_indices differ in size, or when an optional vector is neither empty
// nor of their size. An empty trace gives an invalid prediction.
DriftPrediction PredictNextShift(const DriftTrace& trace,
                                 const DriftPredictionOptions& options = DriftPredictionOptions());

}  // namespace livealign
