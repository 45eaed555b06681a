#include "adapters/registration_outputs.hpp"

#include <cmath>
#include <filesystem>

#include "adapters/csv_writer.hpp"
#include "adapters/file_error.hpp"
#include "adapters/json_report.hpp"
#include "adapters/png_writer.hpp"
#include "adapters/result_json.hpp"
#include "adapters/shift_matrix_image.hpp"
#include "adapters/tiff_io.hpp"

namespace livealign {
namespace {

nlohmann::json ShiftJson(const Shift& s) { return {{"x", s.x}, {"y", s.y}}; }

std::optional<double> PixelSize(const EngineOptions& o) {
  if (o.pixel_size_x_A > 0) return o.pixel_size_x_A;
  return std::nullopt;
}

}  // namespace

nlohmann::json ImageQualityJson(const ImageQualityReport& r) {
  auto opt = [](const auto& value) -> nlohmann::json {
    if (value) return *value;
    return nullptr;
  };
  return {{"num_frames", r.num_frames},
          {"frc_status", r.frc_status},
          {"resolution_cycles_per_px", opt(r.resolution_cycles_per_px)},
          {"resolution_half_cycles_per_px", opt(r.resolution_half_cycles_per_px)},
          {"resolution_A", opt(r.resolution_A)},
          {"snr", r.snr},
          {"next_resolution_cycles_per_px", opt(r.next_resolution_cycles_per_px)},
          {"frames_for_next_resolution", opt(r.frames_for_next_resolution)},
          {"info_transfer_cycles_per_px", opt(r.info_transfer_cycles_per_px)},
          {"info_transfer_A", opt(r.info_transfer_A)},
          {"single_frame_info_transfer_cycles_per_px", opt(r.single_frame_info_transfer_cycles_per_px)},
          {"single_frame_info_transfer_A", opt(r.single_frame_info_transfer_A)},
          {"drift_px_per_frame", ShiftJson(r.drift_px_per_frame)},
          {"drift_A_per_s", r.drift_A_per_s ? ShiftJson(*r.drift_A_per_s) : nlohmann::json(nullptr)},
          {"drift_trend", r.drift_trend},
          {"drift_settled", r.drift_settled},
          {"drift_settled_since_frame", r.drift_settled_since_frame},
          {"good", r.good},
          {"stop", r.stop},
          {"reason", r.reason},
          {"frc_curve",
           {{"frequency_cycles_per_px", r.frc_frequency_cycles_per_px},
            {"frc", r.frc},
            {"noise_threshold", r.frc_noise_threshold},
            {"ssnr", r.ssnr}}},
          {"compute_ms", r.compute_ms}};
}

nlohmann::json BuildReport(const RegistrationEngine& engine, const nlohmann::json& extra,
                           const ImageQualityReport* image_quality) {
  const EngineQuality q = engine.quality();
  nlohmann::json quality = {
      {"num_frames", q.num_frames},
      {"consistency_rms_px", q.consistency_rms_px},
      {"rejected_pair_fraction", q.rejected_pair_fraction},
      {"flagged_frames", q.flagged_frames},
      {"pairs_snapped", q.pairs_snapped},
      {"median_cycle_error_px", q.median_cycle_error_px},
      {"max_cycle_error_px", q.max_cycle_error_px},
      {"cycles_equal_to_lattice_vector", q.cycles_equal_to_lattice_vector},
      {"frames_moved_by_lattice_offset", q.frames_moved_by_lattice_offset},
      {"frames_decided_by_coarse", q.frames_decided_by_coarse},
      {"temporal_lattice_spikes", q.temporal_lattice_spikes},
      {"stage_jumps", q.stage_jumps},
      {"stage_jump_frames", q.stage_jump_frames},
      {"stage_jumps_unobservable", q.stage_jumps_unobservable},
      {"valid", q.valid},
      {"lattice_offset_observable", q.lattice_offset_observable},
      {"verdict", q.verdict},
      {"drift_rate_px_per_s", q.drift_rate_px_per_s ? ShiftJson(*q.drift_rate_px_per_s) : nullptr},
      {"drift_rate_A_per_s", q.drift_rate_A_per_s ? ShiftJson(*q.drift_rate_A_per_s) : nullptr}};
  nlohmann::json lattice = {{"found", q.lattice.found}};
  if (q.lattice.found) {
    lattice["a_px"] = ShiftJson(q.lattice.a_px);
    lattice["b_px"] = ShiftJson(q.lattice.b_px);
    const EngineOptions& o = engine.options();
    if (o.pixel_size_x_A > 0 && o.pixel_size_y_A > 0) {
      auto in_A = [&](const Shift& v) {
        return std::hypot(v.x * o.pixel_size_x_A, v.y * o.pixel_size_y_A);
      };
      lattice["a_A"] = in_A(q.lattice.a_px);
      lattice["b_A"] = in_A(q.lattice.b_px);
    }
  }
  quality["lattice"] = lattice;
  quality["lattice"]["reciprocal_cycles_per_px"] = nlohmann::json::array();
  for (const Shift& g : q.lattice.reciprocal_cycles_per_px) {
    quality["lattice"]["reciprocal_cycles_per_px"].push_back({g.x, g.y});
  }

  nlohmann::json frames = nlohmann::json::array();
  for (const FrameState& f : engine.frames()) {
    frames.push_back({{"frame", f.index},
                      {"timestamp_s", std::isfinite(f.timestamp_s) ? nlohmann::json(f.timestamp_s)
                                                                   : nlohmann::json(nullptr)},
                      {"shift_x_px", f.shift.x},
                      {"shift_y_px", f.shift.y},
                      {"residual_px", f.residual_px},
                      {"flagged", f.flagged}});
  }
  nlohmann::json report = {
      {"livealign_version", "0.1.0"},
      {"frame_shape", {engine.frame_shape().rows, engine.frame_shape().cols}},
      {"parameters", OptionsJson(engine.options())},
      {"quality", quality},
      {"image_quality", ImageQualityJson(image_quality ? *image_quality : engine.ImageQuality())},
      {"frames", frames},
      {"memory", {{"cache_bytes", engine.cache_bytes()}, {"frame_bytes", engine.frame_bytes()}}}};
  for (auto it = extra.begin(); it != extra.end(); ++it) report[it.key()] = it.value();
  return report;
}

std::vector<std::string> WriteAverageFiles(const std::string& dir, const std::string& stem,
                                           const AverageImage& average,
                                           std::optional<double> pixel_size_A, bool png) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw FileError(dir, "cannot create directory: " + ec.message());
  const fs::path base = fs::absolute(dir);
  std::vector<std::string> written;
  auto path = [&](const std::string& suffix) {
    written.push_back((base / (stem + suffix)).string());
    return written.back();
  };
  if (!average.valid.Empty()) {
    WriteTiffFloat32(path(".tif"), average.common, pixel_size_A);
    if (png) WriteGreyPng(path(".png"), average.common);
  }
  WriteTiffFloat32(path("_full.tif"), average.full, pixel_size_A);
  return written;
}

nlohmann::json WriteChannelAverages(const std::string& dir,
                                    const std::vector<NamedAverage>& averages,
                                    const std::string& register_channel,
                                    std::optional<double> pixel_size_A) {
  nlohmann::json names = nlohmann::json::array();
  nlohmann::json files = nlohmann::json::array();
  for (const NamedAverage& c : averages) {
    names.push_back(c.channel);
    for (const std::string& path :
         WriteAverageFiles(dir, "average_" + c.channel, c.average, pixel_size_A, /*png=*/false)) {
      files.push_back(path);
    }
  }
  return {{"names", names}, {"register_channel", register_channel}, {"files", files}};
}

RegistrationOutputs WriteRegistrationOutputs(const std::string& dir,
                                             const RegistrationEngine& engine,
                                             const nlohmann::json& extra,
                                             const ImageQualityReport* image_quality) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw FileError(dir, "cannot create directory: " + ec.message());
  const fs::path base = fs::absolute(dir);
  RegistrationOutputs outputs;
  auto path = [&](const char* name) {
    outputs.written.push_back((base / name).string());
    return outputs.written.back();
  };
  const std::optional<double> pixel_size_A = PixelSize(engine.options());

  std::vector<ShiftCsvRow> rows;
  for (const FrameState& f : engine.frames()) {
    rows.push_back({f.index, f.shift.x, f.shift.y, f.residual_px, f.flagged});
  }
  WriteShiftsCsv(path("shifts.csv"), rows);

  for (std::string& written :
       WriteAverageFiles(dir, "average", engine.Average(), pixel_size_A, /*png=*/true)) {
    outputs.written.push_back(std::move(written));
  }

  const ShiftMatrixSnapshot matrices = engine.Matrices();
  if (matrices.k > 0) {
    ShiftMatrixData data{matrices.k, matrices.x, matrices.y, matrices.status};
    WriteShiftMatrixPng(path("shift_matrix.png"), data);
  }

  // The report goes last, so its presence means the other files are complete.
  nlohmann::json report = BuildReport(engine, extra, image_quality);
  report["files"] = outputs.written;
  WriteJsonFile(path("report.json"), report);
  return outputs;
}

}  // namespace livealign
