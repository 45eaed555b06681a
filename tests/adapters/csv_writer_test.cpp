#include "adapters/csv_writer.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "adapters/file_error.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("shifts csv has the exact header and round-trips", "[adapters][csv]") {
  const std::string dir = testing::ScratchDir("csv_roundtrip");
  const std::string path = dir + "/shifts.csv";
  const std::vector<ShiftCsvRow> rows = {
      {0, 0.0, 0.0, 0.01234, false},
      {1, 2.08123, 0.13, std::nan(""), true},
      {2, -6.09, 7.18, 0.5, false},
  };
  WriteShiftsCsv(path, rows);
  std::ifstream in(path);
  std::string header, first;
  std::getline(in, header);
  std::getline(in, first);
  CHECK(header == "frame,shift_x_px,shift_y_px,residual_px,flagged");
  CHECK(first == "0,0.0000,0.0000,0.0123,0");

  const std::vector<ShiftCsvRow> back = ReadShiftsCsv(path);
  REQUIRE(back.size() == rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CAPTURE(i);
    CHECK(back[i].frame == rows[i].frame);
    CHECK_THAT(back[i].shift_x_px, WithinAbs(rows[i].shift_x_px, 5e-5));
    CHECK_THAT(back[i].shift_y_px, WithinAbs(rows[i].shift_y_px, 5e-5));
    if (std::isnan(rows[i].residual_px)) {
      CHECK(std::isnan(back[i].residual_px));
    } else {
      CHECK_THAT(back[i].residual_px, WithinAbs(rows[i].residual_px, 5e-5));
    }
    CHECK(back[i].flagged == rows[i].flagged);
  }
  CHECK(FormatShiftsCsv({}) == std::string(kShiftsCsvHeader) + "\n");
}

TEST_CASE("shifts csv reader accepts CRLF and refuses malformed files", "[adapters][csv]") {
  const std::string dir = testing::ScratchDir("csv_malformed");
  const std::string path = dir + "/shifts.csv";
  SECTION("CRLF line ends") {
    WriteText(path, std::string(kShiftsCsvHeader) + "\r\n3,1.5,-2.25,0.1,1\r\n");
    const auto rows = ReadShiftsCsv(path);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].frame == 3);
    CHECK(rows[0].shift_y_px == -2.25);
    CHECK(rows[0].flagged);
  }
  auto require_error = [&](const std::string& problem) {
    try {
      ReadShiftsCsv(path);
      FAIL("no FileError");
    } catch (const FileError& e) {
      INFO(e.what());
      CHECK_THAT(std::string(e.what()), Contains("shifts.csv") && Contains(problem));
    }
  };
  SECTION("missing") { require_error("cannot open"); }
  SECTION("empty") {
    WriteText(path, "");
    require_error("empty file");
  }
  SECTION("wrong header") {
    WriteText(path, "frame,dx,dy\n0,1,2\n");
    require_error("unexpected header");
  }
  SECTION("short row") {
    WriteText(path, std::string(kShiftsCsvHeader) + "\n0,1.0,2.0\n");
    require_error("line 2: expected 5 fields");
  }
  SECTION("bad number") {
    WriteText(path, std::string(kShiftsCsvHeader) + "\n0,1.0,abc,0,0\n");
    require_error("line 2: a shift or residual is not a number");
  }
  SECTION("bad flag") {
    WriteText(path, std::string(kShiftsCsvHeader) + "\n0,1.0,2.0,0,yes\n");
    require_error("flagged must be 0 or 1");
  }
}

}  // namespace livealign
