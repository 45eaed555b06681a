#include "adapters/atomic_file.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "adapters/file_error.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int CountEntries(const std::string& dir) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    (void)entry;
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("atomic write replaces the file only when the writer succeeds", "[adapters][atomic]") {
  const std::string dir = testing::ScratchDir("atomic");
  const std::string path = dir + "/report.txt";
  AtomicWriteBytes(path, "old", 3);
  REQUIRE(ReadAll(path) == "old");

  SECTION("success replaces the content, in the same directory, leaving no temporary") {
    std::string seen_tmp;
    const bool do_fsync = GENERATE(false, true);
    AtomicWriteOptions options;
    options.fsync = do_fsync;
    AtomicWrite(
        path,
        [&](const std::string& tmp) {
          seen_tmp = tmp;
          std::ofstream(tmp) << "new";
        },
        options);
    CHECK(ReadAll(path) == "new");
    CHECK(std::filesystem::path(seen_tmp).parent_path() == std::filesystem::path(path).parent_path());
    CHECK(seen_tmp != path);
    CHECK(CountEntries(dir) == 1);
  }
  SECTION("a throwing writer leaves the old file intact and removes its temporary") {
    CHECK_THROWS_WITH(AtomicWrite(path,
                                  [](const std::string& tmp) {
                                    std::ofstream(tmp) << "half-writ";
                                    throw std::runtime_error("disk on fire");
                                  }),
                      "disk on fire");
    CHECK(ReadAll(path) == "old");
    CHECK(CountEntries(dir) == 1);
  }
  SECTION("a writer that creates nothing is a FileError") {
    CHECK_THROWS_AS(AtomicWrite(path, [](const std::string&) {}), FileError);
    CHECK(ReadAll(path) == "old");
    CHECK(CountEntries(dir) == 1);
  }
  SECTION("an unwritable directory is a FileError naming the file") {
    const std::string bad = dir + "/missing/dir/out.bin";
    try {
      AtomicWriteBytes(bad, "x", 1);
      FAIL("no FileError");
    } catch (const FileError& e) {
      CHECK(e.path() == bad);
    }
  }
}

}  // namespace livealign
