#pragma once
// Writes the files of one registered series into a directory, each replaced
// atomically (write to a temporary name, then rename), so a crash never leaves
// a half-written file. Used by `livealign register` and by the daemon per series.
//
// Files: average.tif (float32, common region), average_full.tif,
// average_mosaic.tif, average_mosaic_counts.tif, average.png
// (WriteAverageFiles),
// shifts.csv (frame,shift_x_px,shift_y_px,residual_px,flagged),
// shift_matrix.png, report.json (effective parameters, timings, quality,
// plus `extra` merged in at the top level; `average`: where the average's
// images lie, AverageGeometryJson).

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/result_json.hpp"
#include "core/registration_engine.hpp"

namespace livealign {

struct RegistrationOutputs {
  std::vector<std::string> written;  // absolute paths of the files written
};

// The numbers (shifts, quality, the shift matrix) come from `result`, one
// snapshot of `engine`; the engine gives the options, the frame shape, the
// memory figures and the average. shift_matrix.png needs result.shift_matrix
// (ResultRequest::shift_matrix) and is not written without it.
// Creates dir if needed. Throws FileError when a file cannot be written; files
// already replaced stay complete. `image_quality`, when given, is reported as
// it is (the daemon has just computed it); otherwise it is computed here.
RegistrationOutputs WriteRegistrationOutputs(const std::string& dir,
                                             const RegistrationEngine& engine,
                                             const RegistrationResult& result,
                                             const nlohmann::json& extra,
                                             const ImageQualityReport* image_quality = nullptr);

// The files of one average, named after `stem`, all float32 but the PNG:
// <stem>.tif (the common region; skipped when it is empty), <stem>_full.tif
// (frame 0's window), <stem>_mosaic.tif (the union of the included frames'
// footprints, each pixel the mean of the frames covering it) with
// <stem>_mosaic_counts.tif (how many frames cover each pixel), and, with
// `png`, <stem>.png (the common region, grey). Where each lies in frame 0's
// coordinates is AverageGeometryJson's (report.json's `average`). Used for average.*
// here, for average_<channel>.* of several-detector series and by `livealign
// apply`. Returns the absolute paths written; throws FileError.
std::vector<std::string> WriteAverageFiles(const std::string& dir, const std::string& stem,
                                           const AverageImage& average,
                                           std::optional<double> pixel_size_A, bool png);

// Several detectors: average_<channel>.tif, average_<channel>_full.tif and
// the mosaic's two (WriteAverageFiles, no PNG) for every channel, in the given order, with the
// registration channel among them. Returns the `channels` section of
// report.json, {names, register_channel, files}, to be passed in `extra` to
// WriteRegistrationOutputs (written after these, so report.json still comes
// last). Throws FileError.
struct NamedAverage {
  std::string channel;
  AverageImage average;
};
nlohmann::json WriteChannelAverages(const std::string& dir,
                                    const std::vector<NamedAverage>& averages,
                                    const std::string& register_channel,
                                    std::optional<double> pixel_size_A);

// The report document alone (also published by the daemon). Computes the
// image quality (tens of ms).
nlohmann::json BuildReport(const RegistrationEngine& engine, const RegistrationResult& result,
                           const nlohmann::json& extra,
                           const ImageQualityReport* image_quality = nullptr);

}  // namespace livealign
