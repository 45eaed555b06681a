#pragma once
// Image quality of a series' running average, assembled from the figures of
// core/quality.hpp: resolution from the Fourier ring correlation of the
// even/odd half-set averages, SNR, information transfer of the average and of
// one frame, the drift trend and the stop-when-good decision.
//
// An explicit computation, not part of every update's result
// (core/registration_result.hpp): it takes tens of ms at 512^2 (two half-set
// averages and three spectra), so the daemon rate-limits it.

#include <optional>
#include <string>
#include <vector>

#include "core/averager.hpp"
#include "core/engine_options.hpp"
#include "core/registration_result.hpp"
#include "core/shift.hpp"
#include "core/thread_pool.hpp"

namespace livealign {

// Image quality of the running average: resolution from the Fourier
// ring correlation of the even/odd half-set averages, SNR, information
// transfer, drift status and the stop-when-good decision. Frequencies are in
// cycles/px; the _A figures are set only when the pixel size is known (for
// non-square pixels a ring's Å figure is the mean of its x and y periods).
struct ImageQualityReport {
  int num_frames = 0;
  // FRC of the half-set averages on the common region; one entry per ring.
  std::vector<double> frc_frequency_cycles_per_px;
  std::vector<double> frc;
  std::vector<double> frc_noise_threshold;  // 3 sigma significance per ring
  std::vector<double> ssnr;                  // spectral SNR of the full average
  // "crossed", "not_reached" (better than Nyquist) or "no_signal" (no
  // resolution can be claimed, e.g. frames of pure noise).
  std::string frc_status = "no_signal";
  std::optional<double> resolution_cycles_per_px;       // FRC = 1/7
  std::optional<double> resolution_half_cycles_per_px;  // FRC = 0.5
  std::optional<double> resolution_A;
  double snr = 0;  // image SNR of the average, from the half-set FRC
  // Projection: frames needed for a 10 % finer resolution (SSNR grows in
  // proportion to the number of frames); nullopt when there is no signal to
  // extrapolate from.
  std::optional<double> next_resolution_cycles_per_px;
  std::optional<int> frames_for_next_resolution;
  // Highest spatial frequency with a significant structure peak in the power
  // spectrum, for the average and for a single (the latest) frame.
  std::optional<double> info_transfer_cycles_per_px;
  std::optional<double> info_transfer_A;
  std::optional<double> single_frame_info_transfer_cycles_per_px;
  std::optional<double> single_frame_info_transfer_A;
  // Drift over the last drift_window_frames: velocity, trend, settled.
  Shift drift_px_per_frame;
  std::optional<Shift> drift_A_per_s;
  std::string drift_trend = "unknown";  // slowing, steady, speeding
  bool drift_settled = false;
  int drift_settled_since_frame = -1;   // -1: not settled
  // Stop-when-good (EngineOptions targets).
  bool good = false;
  bool stop = false;  // good, or max_frames reached
  std::string reason;
  double compute_ms = 0;
};

// The figures of `averager`'s current average for the series `frames` (the
// latest result's), under the targets and calibration of `options`. The
// three spectral figures run in parallel on `pool`.
ImageQualityReport AssessImageQuality(const ShiftedAverager& averager,
                                      const std::vector<FrameState>& frames,
                                      const EngineOptions& options, ThreadPool& pool);

// Frames a ring at FRC value c needs to reach the 1/7 criterion, from n now:
// the half-set SSNR c / (1 - c) grows in proportion to the frames and must
// reach 1/6 (FRC = 1/7). nullopt unless 0 < c < 1.
std::optional<int> FramesToReachOneSeventh(double c, int n);

}  // namespace livealign
