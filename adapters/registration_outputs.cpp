#include "adapters/registration_outputs.hpp"

#include <cmath>
#include <filesystem>
#include <future>

#include "adapters/csv_writer.hpp"
#include "adapters/file_error.hpp"
#include "adapters/json_report.hpp"
#include "adapters/png_writer.hpp"
#include "adapters/result_json.hpp"
#include "adapters/shift_matrix_image.hpp"
#include "adapters/tiff_io.hpp"
#include "core/fft.hpp"

namespace livealign {
namespace {

std::optional<double> PixelSize(const EngineOptions& o) {
  if (o.pixel_size_x_A > 0) return o.pixel_size_x_A;
  return std::nullopt;
}

}  // namespace

nlohmann::json BuildReport(const RegistrationEngine& engine, const RegistrationResult& result,
                           const nlohmann::json& extra,
                           const ImageQualityReport* image_quality) {
  const EngineOptions& o = engine.options();
  const ImageQualityReport figures = image_quality ? *image_quality : engine.ImageQuality();
  nlohmann::json image_quality_json = ImageQualityJson(figures);
  image_quality_json["frc_curve"] = FrcCurveJson(figures);

  nlohmann::json report = {
      {"livealign_version", "0.1.0"},
      {"frame_shape", {engine.frame_shape().rows, engine.frame_shape().cols}},
      {"parameters", OptionsJson(engine.options())},
      {"quality", EngineQualityJson(result.quality, o.pixel_size_x_A, o.pixel_size_y_A)},
      {"image_quality", std::move(image_quality_json)},
      {"frames", FrameColumnsJson(result.frames)},
      {"memory", {{"cache_bytes", engine.cache_bytes()}, {"frame_bytes", engine.frame_bytes()},
                  {"precision_spectra_bytes", engine.precision_spectra_bytes()}}},
      // Plans from this machine's wisdom or estimated (core/fft.hpp): the
      // timings depend on it, the results only in float rounding.
      {"fft_planning", FftPlanningName(CurrentFftPlanning())}};
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
  // The PNG (contrast percentiles, scaling, zlib: the longest of these) is
  // encoded on a thread of its own while this one writes the TIFFs; at the
  // end of `register` this is the last file still being written.
  // (An exception here leaves the future's destructor to wait for it.)
  std::future<void> png_written;
  if (!average.valid.Empty()) {
    if (png) {
      const std::string png_path = path(".png");
      png_written = std::async(std::launch::async, [png_path, &average] {
        WriteGreyPng(png_path, average.common);
      });
    }
    WriteTiffFloat32(path(".tif"), average.common, pixel_size_A);
  }
  WriteTiffFloat32(path("_full.tif"), average.full, pixel_size_A);
  // The mosaic is what a drift beyond the frame leaves to look at: frame 0's
  // window then holds only the frames still overlapping it.
  if (!average.mosaic_extent.Empty()) {
    WriteTiffFloat32(path("_mosaic.tif"), average.mosaic, pixel_size_A);
    WriteTiffFloat32(path("_mosaic_counts.tif"), average.mosaic_counts, pixel_size_A);
  }
  if (png_written.valid()) png_written.get();  // rethrows the PNG's exception, if any
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
                                             const RegistrationResult& result,
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

  // The shift-matrix figure (rendering and PNG encoding, the largest of these
  // files) is written on a thread of its own while this one writes the rest.
  // (An exception here leaves the futures' destructors to wait for them.)
  const std::string matrix_path = (base / "shift_matrix.png").string();
  std::future<void> shift_matrix_written;
  if (result.shift_matrix && result.shift_matrix->k > 0) {
    shift_matrix_written = std::async(std::launch::async, [matrix_path, &result] {
      WriteShiftMatrixPng(matrix_path, *result.shift_matrix);
    });
  } else if (result.shift_matrix_view && result.shift_matrix_view->k > 0) {
    // Beyond ResultRequest::ShiftMatrixPicture's dense limit: the overview's cells.
    shift_matrix_written = std::async(std::launch::async, [matrix_path, &result] {
      ShiftMatrixImageOptions overview;
      overview.frames_per_cell = result.shift_matrix_view->block;
      WriteShiftMatrixPng(matrix_path, CellsAsShiftMatrix(*result.shift_matrix_view), overview);
    });
  }

  // So is the average (assembling it, TIFF and PNG encoding), while this one
  // computes the report's image quality: both only read the engine.
  struct AverageWritten {
    std::vector<std::string> files;
    nlohmann::json geometry;
  };
  std::future<AverageWritten> averages_written =
      std::async(std::launch::async, [&dir, &engine, &pixel_size_A] {
        const AverageImage average = engine.Average();
        return AverageWritten{WriteAverageFiles(dir, "average", average, pixel_size_A, /*png=*/true),
                              AverageGeometryJson(average)};
      });

  std::vector<ShiftCsvRow> rows;
  for (const FrameState& f : result.frames) {
    rows.push_back({f.index, f.shift.x, f.shift.y, f.residual_px, f.flagged});
  }
  WriteShiftsCsv(path("shifts.csv"), rows);

  nlohmann::json report = BuildReport(engine, result, extra, image_quality);
  AverageWritten average = averages_written.get();
  for (std::string& written : average.files) outputs.written.push_back(std::move(written));
  report["average"] = std::move(average.geometry);
  if (shift_matrix_written.valid()) {
    shift_matrix_written.get();  // rethrows the writer thread's exception, if any
    outputs.written.push_back(matrix_path);
  }
  // The report goes last, so its presence means the other files are complete.
  report["files"] = outputs.written;
  WriteJsonFile(path("report.json"), report);
  return outputs;
}

}  // namespace livealign
