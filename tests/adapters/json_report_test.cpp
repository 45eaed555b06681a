#include "adapters/json_report.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <string>

#include "adapters/file_error.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {

TEST_CASE("json files round-trip pretty-printed, NaN becoming null", "[adapters][json]") {
  const std::string dir = testing::ScratchDir("json");
  const std::string path = dir + "/report.json";
  nlohmann::json doc;
  doc["frames"] = 5;
  doc["pixel_size_A"] = 0.092;
  doc["residual_px"] = std::nan("");
  doc["shifts"] = {{0.0, 0.0}, {2.08, 0.13}};
  WriteJsonFile(path, doc);

  std::ifstream in(path);
  std::string first_line, second_line;
  std::getline(in, first_line);
  std::getline(in, second_line);
  CHECK(first_line == "{");
  CHECK(second_line.rfind("  \"", 0) == 0);  // 2-space indent

  const nlohmann::json back = ReadJsonFile(path);
  CHECK(back["frames"] == 5);
  CHECK(back["pixel_size_A"] == 0.092);
  CHECK(back["residual_px"].is_null());
  CHECK(back["shifts"][1][0] == 2.08);
}

TEST_CASE("json reader and writer report problems as FileError", "[adapters][json]") {
  const std::string dir = testing::ScratchDir("json_errors");
  SECTION("missing") {
    CHECK_THROWS_MATCHES(ReadJsonFile(dir + "/absent.json"), FileError,
                         Catch::Matchers::Message(dir + "/absent.json: no such file"));
  }
  SECTION("invalid") {
    std::ofstream(dir + "/bad.json") << "{\"a\": ";
    try {
      ReadJsonFile(dir + "/bad.json");
      FAIL("no FileError");
    } catch (const FileError& e) {
      CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("bad.json: invalid JSON"));
    }
  }
  SECTION("unserialisable document leaves the old file") {
    WriteJsonFile(dir + "/keep.json", {{"ok", true}});
    nlohmann::json bad;
    bad["name"] = std::string("\xff\xfe");  // not UTF-8
    CHECK_THROWS_AS(WriteJsonFile(dir + "/keep.json", bad), FileError);
    CHECK(ReadJsonFile(dir + "/keep.json")["ok"] == true);
  }
}

}  // namespace livealign
