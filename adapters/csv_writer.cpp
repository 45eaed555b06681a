#include "adapters/csv_writer.hpp"

#include <cerrno>
#include <cmath>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "adapters/file_error.hpp"

namespace livealign {
namespace {

// printf's %f writes "nan"/"-nan"/"inf"; keep one spelling for NaN.
void AppendNumber(double v, std::string* out) {
  char buffer[64];
  if (std::isnan(v)) {
    *out += "nan";
    return;
  }
  std::snprintf(buffer, sizeof(buffer), "%.4f", v);
  *out += buffer;
}

bool ParseDouble(const std::string& field, double* out) {
  if (field.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(field.c_str(), &end);
  return end == field.c_str() + field.size();
}

}  // namespace

std::string FormatShiftsCsv(const std::vector<ShiftCsvRow>& rows) {
  std::string text = kShiftsCsvHeader;
  text += '\n';
  for (const ShiftCsvRow& row : rows) {
    text += std::to_string(row.frame);
    text += ',';
    AppendNumber(row.shift_x_px, &text);
    text += ',';
    AppendNumber(row.shift_y_px, &text);
    text += ',';
    AppendNumber(row.residual_px, &text);
    text += row.flagged ? ",1\n" : ",0\n";
  }
  return text;
}

void WriteShiftsCsv(const std::string& path, const std::vector<ShiftCsvRow>& rows,
                    const AtomicWriteOptions& atomic) {
  const std::string text = FormatShiftsCsv(rows);
  AtomicWriteBytes(path, text.data(), text.size(), atomic);
}

std::vector<ShiftCsvRow> ReadShiftsCsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(path, "cannot open (no such file or not readable)");
  std::string line;
  auto next_line = [&]() {
    if (!std::getline(in, line)) return false;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  };
  if (!next_line()) throw FileError(path, "empty file, expected the shifts CSV header");
  if (line != kShiftsCsvHeader) {
    throw FileError(path, "unexpected header \"" + line.substr(0, 80) + "\", expected \"" +
                              kShiftsCsvHeader + "\"");
  }
  std::vector<ShiftCsvRow> rows;
  int line_number = 1;
  while (next_line()) {
    ++line_number;
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::stringstream ss(line);
    std::string field;
    while (std::getline(ss, field, ',')) fields.push_back(field);
    if (!line.empty() && line.back() == ',') fields.push_back("");
    const std::string where = "line " + std::to_string(line_number) + ": ";
    if (fields.size() != 5) {
      throw FileError(path, where + "expected 5 fields, found " + std::to_string(fields.size()));
    }
    ShiftCsvRow row;
    char* end = nullptr;
    errno = 0;
    const long long frame = std::strtoll(fields[0].c_str(), &end, 10);
    if (fields[0].empty() || end != fields[0].c_str() + fields[0].size() || errno == ERANGE) {
      throw FileError(path, where + "frame \"" + fields[0] + "\" is not an integer");
    }
    row.frame = frame;
    if (!ParseDouble(fields[1], &row.shift_x_px) || !ParseDouble(fields[2], &row.shift_y_px) ||
        !ParseDouble(fields[3], &row.residual_px)) {
      throw FileError(path, where + "a shift or residual is not a number");
    }
    if (fields[4] != "0" && fields[4] != "1") {
      throw FileError(path, where + "flagged must be 0 or 1, got \"" + fields[4] + "\"");
    }
    row.flagged = fields[4] == "1";
    rows.push_back(row);
  }
  return rows;
}

}  // namespace livealign
