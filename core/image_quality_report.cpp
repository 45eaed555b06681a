#include "core/image_quality_report.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>

#include "core/quality.hpp"

namespace livealign {
namespace {

std::optional<double> ToA(std::optional<double> f_cycles_per_px, const EngineOptions& o) {
  if (!f_cycles_per_px || *f_cycles_per_px <= 0 || o.pixel_size_x_A <= 0 || o.pixel_size_y_A <= 0) {
    return std::nullopt;
  }
  return RingFrequencyToA(*f_cycles_per_px, PixelSizeA{o.pixel_size_y_A, o.pixel_size_x_A}).mean_A;
}

using Clock = std::chrono::steady_clock;

// The largest best-covered region whose three spectral figures are computed
// in parallel (pixels): 1024^2, ~32 MB of buffers at once.
constexpr std::int64_t kParallelQualityMaxPixels = std::int64_t{1} << 20;

}  // namespace

std::optional<int> FramesToReachOneSeventh(double c, int n) {
  if (!(c > 0.0) || c >= 1.0) return std::nullopt;
  const double ssnr_half = c / (1.0 - c);
  const double factor = (1.0 / 6.0) / ssnr_half;
  return static_cast<int>(std::ceil(n * std::max(1.0, factor)));
}

ImageQualityReport AssessImageQuality(const ShiftedAverager& averager,
                                      const std::vector<FrameState>& frames,
                                      const EngineOptions& o, ThreadPool& pool) {
  const auto start = Clock::now();
  ImageQualityReport r;
  const int num_frames = static_cast<int>(frames.size());
  r.num_frames = num_frames;

  // The three spectral figures are independent: computed in parallel
  // (below a region size, see the loop). On the mosaic's best-covered region
  // (core/coverage_region.hpp), so the figures stay defined when the drift
  // has carried the view off frame 0. At the series end this runs beside
  // everything the series holds, so no copy of the region is kept: the
  // averager writes each mean straight into the transform's input, and each
  // figure holds its transform and spectrum alone (12 bytes a pixel for the
  // FRC, 10 for an information transfer).
  const AverageImage::Rect region = averager.BestCoveredRegion();
  const Shape region_shape{region.rows(), region.cols()};
  const bool have_region = region.rows() >= 32 && region.cols() >= 32;
  std::optional<FrcReport> frc;
  InformationTransferReport average_transfer, single_transfer;
  const auto task_body = [&](int task) {
    if (task == 0 && have_region && num_frames >= 2) {
      // Resolution: FRC of the even/odd half-set averages over the
      // best-covered region (both halves cover every pixel of it).
      frc = FourierRingCorrelation(
          region_shape, [&](float* out) { return averager.HalfSetMeanOver(0, region, out); },
          [&](float* out) { return averager.HalfSetMeanOver(1, region, out); });
    } else if (task == 1 && have_region) {
      average_transfer = InformationTransfer(region_shape, [&](float* out) {
        averager.MeanOver(region, out);
        return true;
      });
    } else if (task == 2 && num_frames > 0) {
      // Information transfer of one frame (the latest), for comparison.
      single_transfer = InformationTransfer(*averager.frame(num_frames - 1));
    }
  };
  // Beyond kParallelQualityMaxPixels they run one after another, so that
  // the peak holds one figure's buffers and not three (~130 MB at 2048^2).
  if (static_cast<std::int64_t>(region.rows()) * region.cols() <= kParallelQualityMaxPixels) {
    pool.ParallelFor(3, [&](int task, int) { task_body(task); });
  } else {
    for (int task = 0; task < 3; ++task) task_body(task);
  }
  if (frc) {
    for (const FrcRing& ring : frc->rings) {
      r.frc_frequency_cycles_per_px.push_back(ring.frequency_cycles_per_px);
      r.frc.push_back(ring.frc);
      r.frc_noise_threshold.push_back(ring.noise_threshold);
      r.ssnr.push_back(ring.ssnr);
    }
    r.snr = frc->image_snr;
    switch (frc->at_one_seventh.status) {
      case FrcCrossing::kCrossed:
        r.frc_status = "crossed";
        r.resolution_cycles_per_px = frc->at_one_seventh.frequency_cycles_per_px;
        break;
      case FrcCrossing::kNotReached:
        r.frc_status = "not_reached";
        r.resolution_cycles_per_px = 0.5;  // at least Nyquist
        break;
      case FrcCrossing::kNoSignal:
        r.frc_status = "no_signal";
        break;
    }
    if (frc->at_half.status != FrcCrossing::kNoSignal) {
      r.resolution_half_cycles_per_px =
          frc->at_half.status == FrcCrossing::kCrossed ? frc->at_half.frequency_cycles_per_px : 0.5;
    }
    r.resolution_A = ToA(r.resolution_cycles_per_px, o);
    // Projection for a 10 % finer resolution: the FRC there (mean of the
    // rings within +-5 %) and the frames it needs to reach 1/7.
    if (r.frc_status == "crossed") {
      const double target = 1.1 * *r.resolution_cycles_per_px;
      double sum = 0;
      int count = 0;
      for (std::size_t i = 0; i < r.frc.size(); ++i) {
        if (std::abs(r.frc_frequency_cycles_per_px[i] - target) <= 0.05 * target) {
          sum += r.frc[i];
          ++count;
        }
      }
      if (count > 0 && target < 0.5) {
        r.next_resolution_cycles_per_px = target;
        r.frames_for_next_resolution = FramesToReachOneSeventh(sum / count, num_frames);
      }
    }
  }
  if (average_transfer.found) {
    r.info_transfer_cycles_per_px = average_transfer.frequency_cycles_per_px;
    r.info_transfer_A = ToA(r.info_transfer_cycles_per_px, o);
  }
  if (single_transfer.found) {
    r.single_frame_info_transfer_cycles_per_px = single_transfer.frequency_cycles_per_px;
    r.single_frame_info_transfer_A = ToA(r.single_frame_info_transfer_cycles_per_px, o);
  }

  // Drift over the recent window, and since when it has been settled.
  DriftOptions drift_options;
  drift_options.window_frames = o.drift_window_frames;
  drift_options.settled_speed_px_per_frame = o.settled_px_per_frame;
  const double pixel_A = o.pixel_size_x_A > 0 && o.pixel_size_y_A > 0
                             ? 0.5 * (o.pixel_size_x_A + o.pixel_size_y_A)
                             : 0.0;
  if (o.settled_A_per_s > 0 && pixel_A > 0) {
    drift_options.settled_speed_px_per_s = o.settled_A_per_s / pixel_A;
  }
  std::vector<Shift> shifts;
  std::vector<double> times;
  DriftSettledTracker tracker(drift_options);
  DriftStatus drift;
  for (const FrameState& f : frames) {
    if (f.flagged) continue;
    shifts.push_back(f.shift);
    times.push_back(f.timestamp_s);
    drift = tracker.Add(f.shift, f.timestamp_s);
  }
  if (!shifts.empty()) {
    r.drift_px_per_frame = drift.velocity_px_per_frame;
    if (std::isfinite(drift.velocity_px_per_s.x) && pixel_A > 0) {
      r.drift_A_per_s = Shift{drift.velocity_px_per_s.x * o.pixel_size_x_A,
                              drift.velocity_px_per_s.y * o.pixel_size_y_A};
    }
    r.drift_trend = DriftTrendName(drift.trend);
    r.drift_settled = drift.settled;
    r.drift_settled_since_frame = drift.settled ? tracker.settled_since_frame() : -1;
  }

  // Stop-when-good.
  StopRule::Options stop_options;
  stop_options.target_resolution_A = o.target_resolution_A;
  stop_options.target_snr = o.target_snr;
  stop_options.max_frames = o.max_frames;
  stop_options.require_drift_settled = o.require_drift_settled;
  StopInputs inputs;
  inputs.num_frames = num_frames;
  if (r.resolution_A) inputs.resolution_A = *r.resolution_A;
  if (r.frc_status != "no_signal") inputs.snr = r.snr;
  inputs.drift_settled = r.drift_settled;
  const StopDecision decision = StopRule(stop_options).Evaluate(inputs);
  r.good = decision.good;
  r.stop = decision.stop;
  r.reason = decision.reason;
  if (o.target_resolution_A > 0 && pixel_A <= 0) {
    r.good = false;
    r.reason = "target resolution set but the pixel size is unknown; " + r.reason;
  }
  r.compute_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return r;
}

}  // namespace livealign
