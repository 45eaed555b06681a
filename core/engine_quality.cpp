#include "core/engine_quality.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/quality.hpp"

namespace livealign {

EngineQuality AssessEngineQuality(const EngineQualityInputs& m) {
  EngineQuality q;
  q.num_frames = static_cast<int>(m.frames->size());
  if (q.num_frames == 0) {
    q.verdict = "no frames";
    return q;
  }
  q.consistency_rms_px = m.solve->consistency_rms_px;
  q.rejected_pair_fraction = m.solve->rejected_pair_fraction;
  q.pairs_snapped = m.pairs_snapped;
  q.median_cycle_error_px = m.solve->cycles.median_px;
  q.max_cycle_error_px = m.solve->cycles.max_px;
  q.cycles_equal_to_lattice_vector = m.solve->cycles.lattice_vector_count;
  q.solver_converged = m.solve->converged;
  q.solver_message = m.solve->message;
  for (const auto& f : *m.frames) q.flagged_frames += f.flagged ? 1 : 0;

  // Drift rate: the least-squares fit of core/quality.hpp over the last
  // drift_window_frames unflagged frames (fewer at the start of a series).
  std::vector<Shift> shifts;
  std::vector<double> times;
  for (const FrameState& f : *m.frames) {
    if (f.flagged) continue;
    shifts.push_back(f.shift);
    times.push_back(f.timestamp_s);
  }
  const int window = std::min<int>(m.drift_window_frames, static_cast<int>(shifts.size()));
  if (window >= 2) {
    DriftOptions drift_options;
    drift_options.window_frames = window;
    const DriftStatus drift = EvaluateDrift(shifts, times, drift_options);
    if (std::isfinite(drift.velocity_px_per_s.x) && std::isfinite(drift.velocity_px_per_s.y)) {
      const Shift rate = drift.velocity_px_per_s;
      q.drift_rate_px_per_s = rate;
      if (m.pixel_size_x_A > 0 && m.pixel_size_y_A > 0) {
        q.drift_rate_A_per_s = Shift{rate.x * m.pixel_size_x_A, rate.y * m.pixel_size_y_A};
      }
    }
  }

  if (m.lattice) {
    q.lattice.found = true;
    q.lattice.a_px = m.lattice->a;
    q.lattice.b_px = m.lattice->b;
    q.lattice.reciprocal_cycles_per_px = *m.reciprocal_peaks;
  }
  q.frames_moved_by_lattice_offset = m.offsets->frames_moved;
  q.frames_decided_by_coarse = m.offsets->frames_decided_by_coarse;
  q.stage_jumps = static_cast<int>(m.offsets->jumps.size());
  for (const StageJumpRecord& jump : m.offsets->jumps) {
    q.stage_jump_frames.push_back(jump.frame);
    if (!jump.lattice_offset_observable) ++q.stage_jumps_unobservable;
  }
  for (const auto& spike : m.temporal->spikes) {
    if (spike.is_lattice_vector) q.temporal_lattice_spikes.push_back(spike.frame);
  }
  // The absolute offset is observable from image content when the coarse
  // (Bragg-free) stage decided most frames; without a lattice there is no
  // ambiguity to resolve.
  q.lattice_offset_observable =
      !m.lattice || 2 * m.offsets->frames_decided_by_coarse >= std::max(1, q.num_frames - 1);

  // Valid: most frames registered, the inlier set consistent to well under a
  // pixel, no frame jumping by a lattice vector in time, and every stage jump
  // pinned (a jump's lattice offset cannot come from continuity).
  const int total = q.num_frames;
  const bool enough = q.flagged_frames * 4 <= total;
  const bool consistent = q.consistency_rms_px < 0.5;
  const bool no_spikes = q.temporal_lattice_spikes.empty();
  const bool jumps_pinned = !m.lattice || q.stage_jumps_unobservable == 0;
  q.valid = enough && consistent && no_spikes && jumps_pinned;

  std::ostringstream verdict;
  verdict.setf(std::ios::fixed);
  verdict.precision(3);
  if (q.valid) {
    verdict << "valid: " << total - q.flagged_frames << "/" << total << " frames consistent to "
            << q.consistency_rms_px << " px RMS";
  } else {
    verdict << "NOT valid:";
    if (!enough) verdict << " " << q.flagged_frames << "/" << total << " frames flagged;";
    if (!consistent) verdict << " consistency RMS " << q.consistency_rms_px << " px;";
    if (!no_spikes) {
      verdict << " " << q.temporal_lattice_spikes.size() << " frame(s) jump by a lattice vector;";
    }
    if (!jumps_pinned) {
      verdict << " lattice offset across " << q.stage_jumps_unobservable
              << " stage jump(s) not observable;";
    }
  }
  if (q.pairs_snapped > 0) verdict << "; " << q.pairs_snapped << " hopped pairs snapped";
  if (q.frames_moved_by_lattice_offset > 0) {
    verdict << "; " << q.frames_moved_by_lattice_offset << " frames moved by a lattice vector";
  }
  int pinned_by_runs = 0;
  for (const StageJumpRecord& jump : m.offsets->jumps) {
    if (jump.run_frames_after > 0) ++pinned_by_runs;
  }
  if (pinned_by_runs > 0) {
    verdict << "; " << pinned_by_runs << " stage jump(s) pinned by the frames summed on either side";
  }
  if (m.lattice) {
    verdict << (q.lattice_offset_observable
                    ? "; absolute lattice offset observable (non-periodic content)"
                    : "; absolute lattice offset not observable from image content (no clear "
                      "non-periodic content): frames tied by temporal continuity");
  }
  q.verdict = verdict.str();
  return q;
}

}  // namespace livealign
