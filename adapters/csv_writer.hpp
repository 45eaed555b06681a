#pragma once
// The per-frame shifts table, shifts.csv:
//
//   frame,shift_x_px,shift_y_px,residual_px,flagged
//   0,0.0000,0.0000,0.0123,0
//   1,2.0812,0.1297,nan,1
//
// One row per frame; shift_*_px is the frame's shift in pixels (x = column,
// y = row, sign convention of core/shift.hpp), residual_px the RMS residual
// of its pair equations (nan when undefined), flagged 1 when the solver
// flagged the frame as unreliable. Numbers have 4 decimals (1e-4 px is far
// below any registration accuracy). Written atomically.
//
// Stateless and thread-safe.

#include <string>
#include <vector>

#include "adapters/atomic_file.hpp"
#include "core/frame.hpp"

namespace livealign {

constexpr char kShiftsCsvHeader[] = "frame,shift_x_px,shift_y_px,residual_px,flagged";

struct ShiftCsvRow {
  frame_id_t frame = kInvalidFrameId;
  double shift_x_px = 0;
  double shift_y_px = 0;
  double residual_px = 0;  // NaN allowed (written "nan")
  bool flagged = false;
};

// Writes the header and `rows` in the given order. Throws FileError when the
// file cannot be written (the previous file, if any, is left intact).
void WriteShiftsCsv(const std::string& path, const std::vector<ShiftCsvRow>& rows,
                    const AtomicWriteOptions& atomic = {});

// The table as text, exactly what WriteShiftsCsv writes.
std::string FormatShiftsCsv(const std::vector<ShiftCsvRow>& rows);

// Reads a file written by WriteShiftsCsv (also accepts \r\n line ends and a
// missing final newline). Throws FileError for a missing file, a header other
// than kShiftsCsvHeader, or a malformed row (the message names the line).
std::vector<ShiftCsvRow> ReadShiftsCsv(const std::string& path);

}  // namespace livealign
