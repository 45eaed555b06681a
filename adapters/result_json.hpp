#pragma once
// The one JSON mapping of each result type. report.json
// (adapters/registration_outputs.cpp) and the wire codec (stream/codec.cpp,
// which packs this JSON as msgpack) both use these, so every key is named in
// exactly one place; docs/protocol.md documents them, and
// tests/stream/protocol_doc_test.cpp checks its tables against the codec's
// output in both directions.
//
// Conventions: a vector (shift, rate, lattice vector) is [x, y]; an unknown
// value is null (msgpack nil), never absent, so every message of a type has
// the same keys.

#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/engine_options.hpp"
#include "core/registration_engine.hpp"
#include "core/shift.hpp"

namespace livealign {

// [x, y]; null when absent.
nlohmann::json ShiftJson(const Shift& shift);
nlohmann::json ShiftJson(const std::optional<Shift>& shift);

// Where an average's images lie, frame-0 pixel coordinates, each rectangle
// [row0, row1, col0, col1] half-open: `valid` (every included frame covers
// it: <stem>.tif), `window` (frame 0's own: <stem>_full.tif), `mosaic` (the
// union of the footprints: <stem>_mosaic.tif) and `best_covered` (where the
// image quality is measured), with n_included. The `average` section of
// report.json; null rectangles are empty.
nlohmann::json AverageGeometryJson(const AverageImage& average);

// Each stage's wall time in ms under its StageTimings field name
// (store_ms, preprocess_ms, ... total_ms) and the pair count `pairs`.
nlohmann::json StageTimingsJson(const StageTimings& timings);

// Every engine option under its field name (the report's `parameters`),
// from the option table.
nlohmann::json OptionsJson(const EngineOptions& options);

// The per-frame results as columns, one entry per frame in series order:
// timestamp_s (null when unknown), shift_x_px, shift_y_px, residual_px and
// flagged. The `frames` section of report.json and the per-frame arrays of
// the `drift` message.
nlohmann::json FrameColumnsJson(const std::vector<FrameState>& frames);

// {a_px, b_px, a_A, b_A} (the _A lengths null without both pixel sizes), or
// null when no lattice was found. Pixel sizes in Å, <= 0 = unknown.
nlohmann::json LatticeJson(const LatticeInfo& lattice, double pixel_size_x_A,
                           double pixel_size_y_A);

// The registration figures: the `quality` section of report.json and the
// registration keys of the `quality` message (n_frames, consistency, cycles,
// lattice offsets and jumps, drift rate, `lattice` (LatticeJson),
// `lattice_reciprocal` [[gx, gy], ...] and the verdict).
nlohmann::json EngineQualityJson(const EngineQuality& quality, double pixel_size_x_A,
                                 double pixel_size_y_A);

// The image-quality figures: the `image_quality` section of report.json and
// the image-quality keys of the `quality` message (where they sit next to
// the registration keys, hence image_quality_n_frames and frc_* names).
nlohmann::json ImageQualityJson(const ImageQualityReport& report);

// The FRC curve {frequency_cycles_per_px, frc, noise_threshold, ssnr}
// (report.json only: the wire repeats the figures every frame, not the curve).
nlohmann::json FrcCurveJson(const ImageQualityReport& report);

// One entry of `quality_history`: n_frames and, under their ImageQualityJson
// names, snr, frc_resolution_cycles_per_px and frc_resolution_A.
nlohmann::json QualityHistoryEntryJson(const ImageQualityReport& report);

}  // namespace livealign
