#include "adapters/result_json.hpp"

#include <cmath>

namespace livealign {
namespace {

nlohmann::json OptionalJson(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json();
}

}  // namespace

nlohmann::json ShiftJson(const Shift& shift) { return nlohmann::json::array({shift.x, shift.y}); }

nlohmann::json ShiftJson(const std::optional<Shift>& shift) {
  return shift ? ShiftJson(*shift) : nlohmann::json();
}

namespace {

nlohmann::json RectJson(const AverageImage::Rect& rect) {
  if (rect.Empty()) return nullptr;
  return nlohmann::json::array({rect.row0, rect.row1, rect.col0, rect.col1});
}

}  // namespace

nlohmann::json AverageGeometryJson(const AverageImage& average) {
  const AverageImage::Rect window{0, average.full.rows(), 0, average.full.cols()};
  return {{"n_included", average.num_included},
          {"valid", RectJson(average.valid)},
          {"window", RectJson(window)},
          {"mosaic", RectJson(average.mosaic_extent)},
          {"best_covered", RectJson(average.best_covered)}};
}

nlohmann::json StageTimingsJson(const StageTimings& t) {
  return {{"store_ms", t.store_ms},         {"preprocess_ms", t.preprocess_ms},
          {"correlate_ms", t.correlate_ms}, {"solve_ms", t.solve_ms},
          {"lattice_ms", t.lattice_ms},     {"average_ms", t.average_ms},
          {"refine_ms", t.refine_ms},       {"total_ms", t.total_ms},
          {"pairs", t.pairs}};
}

nlohmann::json OptionsJson(const EngineOptions& options) {
  nlohmann::json json = nlohmann::json::object();
  for (const EngineOptionInfo& option : EngineOptionTable()) {
    std::visit([&](auto member) { json[option.name] = options.*member; }, option.field);
  }
  return json;
}

nlohmann::json FrameColumnsJson(const std::vector<FrameState>& frames) {
  nlohmann::json timestamp = nlohmann::json::array(), x = nlohmann::json::array(),
                 y = nlohmann::json::array(), residual = nlohmann::json::array(),
                 flagged = nlohmann::json::array();
  for (const FrameState& f : frames) {
    timestamp.push_back(std::isfinite(f.timestamp_s) ? nlohmann::json(f.timestamp_s) : nlohmann::json());
    x.push_back(f.shift.x);
    y.push_back(f.shift.y);
    residual.push_back(f.residual_px);
    flagged.push_back(f.flagged);
  }
  return {{"timestamp_s", std::move(timestamp)},
          {"shift_x_px", std::move(x)},
          {"shift_y_px", std::move(y)},
          {"residual_px", std::move(residual)},
          {"flagged", std::move(flagged)}};
}

nlohmann::json LatticeJson(const LatticeInfo& lattice, double pixel_size_x_A,
                           double pixel_size_y_A) {
  if (!lattice.found) return nullptr;
  const bool calibrated = pixel_size_x_A > 0 && pixel_size_y_A > 0;
  auto length_A = [&](const Shift& v) -> nlohmann::json {
    if (!calibrated) return nullptr;
    return std::hypot(v.x * pixel_size_x_A, v.y * pixel_size_y_A);
  };
  return {{"a_px", ShiftJson(lattice.a_px)},
          {"b_px", ShiftJson(lattice.b_px)},
          {"a_A", length_A(lattice.a_px)},
          {"b_A", length_A(lattice.b_px)}};
}

nlohmann::json EngineQualityJson(const EngineQuality& q, double pixel_size_x_A,
                                 double pixel_size_y_A) {
  nlohmann::json reciprocal = nlohmann::json::array();
  for (const Shift& g : q.lattice.reciprocal_cycles_per_px) reciprocal.push_back(ShiftJson(g));
  return {{"n_frames", q.num_frames},
          {"consistency_rms_px", q.consistency_rms_px},
          {"rejected_pair_fraction", q.rejected_pair_fraction},
          {"flagged_frames", q.flagged_frames},
          {"pairs_snapped", q.pairs_snapped},
          {"median_cycle_error_px", q.median_cycle_error_px},
          {"max_cycle_error_px", q.max_cycle_error_px},
          {"cycles_equal_to_lattice_vector", q.cycles_equal_to_lattice_vector},
          {"solver_converged", q.solver_converged},
          {"solver_message", q.solver_message},
          {"frames_moved_by_lattice_offset", q.frames_moved_by_lattice_offset},
          {"frames_decided_by_coarse", q.frames_decided_by_coarse},
          {"temporal_lattice_spikes", q.temporal_lattice_spikes},
          {"stage_jumps", q.stage_jumps},
          {"stage_jump_frames", q.stage_jump_frames},
          {"stage_jumps_unobservable", q.stage_jumps_unobservable},
          {"drift_rate_px_per_s", ShiftJson(q.drift_rate_px_per_s)},
          {"drift_rate_A_per_s", ShiftJson(q.drift_rate_A_per_s)},
          {"lattice", LatticeJson(q.lattice, pixel_size_x_A, pixel_size_y_A)},
          {"lattice_reciprocal", std::move(reciprocal)},
          {"valid", q.valid},
          {"lattice_offset_observable", q.lattice_offset_observable},
          {"verdict", q.verdict}};
}

nlohmann::json ImageQualityJson(const ImageQualityReport& r) {
  return {{"image_quality_n_frames", r.num_frames},
          {"frc_status", r.frc_status},
          {"frc_resolution_cycles_per_px", OptionalJson(r.resolution_cycles_per_px)},
          {"frc_resolution_half_cycles_per_px", OptionalJson(r.resolution_half_cycles_per_px)},
          {"frc_resolution_A", OptionalJson(r.resolution_A)},
          {"snr", r.snr},
          {"next_resolution_cycles_per_px", OptionalJson(r.next_resolution_cycles_per_px)},
          {"frames_for_next_resolution", r.frames_for_next_resolution
                                             ? nlohmann::json(*r.frames_for_next_resolution)
                                             : nlohmann::json()},
          {"info_transfer_cycles_per_px", OptionalJson(r.info_transfer_cycles_per_px)},
          {"info_transfer_A", OptionalJson(r.info_transfer_A)},
          {"single_frame_info_transfer_cycles_per_px",
           OptionalJson(r.single_frame_info_transfer_cycles_per_px)},
          {"single_frame_info_transfer_A", OptionalJson(r.single_frame_info_transfer_A)},
          {"drift_px_per_frame", ShiftJson(r.drift_px_per_frame)},
          {"drift_A_per_s", ShiftJson(r.drift_A_per_s)},
          {"drift_trend", r.drift_trend},
          {"drift_settled", r.drift_settled},
          {"drift_settled_since_frame", r.drift_settled_since_frame},
          {"good", r.good},
          {"stop", r.stop},
          {"reason", r.reason},
          {"image_quality_ms", r.compute_ms}};
}

nlohmann::json FrcCurveJson(const ImageQualityReport& r) {
  return {{"frequency_cycles_per_px", r.frc_frequency_cycles_per_px},
          {"frc", r.frc},
          {"noise_threshold", r.frc_noise_threshold},
          {"ssnr", r.ssnr}};
}

nlohmann::json QualityHistoryEntryJson(const ImageQualityReport& r) {
  const nlohmann::json figures = ImageQualityJson(r);
  nlohmann::json entry = {{"n_frames", r.num_frames}};
  for (const char* key : {"snr", "frc_resolution_cycles_per_px", "frc_resolution_A"}) {
    entry[key] = figures.at(key);
  }
  return entry;
}

}  // namespace livealign
