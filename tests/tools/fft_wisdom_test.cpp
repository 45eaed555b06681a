// `livealign fft-wisdom` and the wisdom every livealign process imports at
// start (core/fft.hpp's FftPlanning): the real binary on real files.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/csv_writer.hpp"
#include "adapters/json_report.hpp"
#include "adapters/npy_writer.hpp"
#include "core/simulator.hpp"
#include "tests/support/run_livealign.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_CASE("fft-wisdom measures the plans a registration uses, and register uses them",
          "[tools][fft_wisdom]") {
  const std::string dir = testing::ScratchDir("fft_wisdom");
  // 512^2: transforms shorter than 384 are never measured (core/fft.cpp).
  SimulatorOptions sim;
  sim.shape = Shape{512, 512};
  sim.dose_counts_per_px = 0.5;
  WriteNpy(dir + "/stack.npy", Simulate(sim, 6, 5).frames);

  const testing::CommandResult made =
      testing::RunLivealign("fft-wisdom --sizes 512 --out " + dir + "/wisdom", dir);
  INFO(made.output);
  REQUIRE(made.exit_code == 0);
  const std::string wisdom = ReadText(dir + "/wisdom");
  REQUIRE(wisdom.rfind("(fftw-", 0) == 0);  // FFTW's own text format
  REQUIRE(wisdom.size() > 1000);            // plans, not an empty header

  auto registered = [&](const std::string& env, const std::string& out) {
    const testing::CommandResult run =
        testing::RunLivealign("register " + dir + "/stack.npy --out " + dir + "/" + out, dir, env);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    return run;
  };
  registered("LIVEALIGN_FFTW_WISDOM=" + dir + "/wisdom", "with_wisdom");
  registered("LIVEALIGN_FFTW_WISDOM=" + dir + "/wisdom", "with_wisdom_again");
  registered("LIVEALIGN_FFTW_WISDOM=", "estimated");
  CHECK(ReadJsonFile(dir + "/with_wisdom/report.json")["fft_planning"] == "wisdom");
  CHECK(ReadJsonFile(dir + "/estimated/report.json")["fft_planning"] == "estimate");
  // The same wisdom gives the same plans, so the same result to the bit.
  CHECK(ReadText(dir + "/with_wisdom/shifts.csv") == ReadText(dir + "/with_wisdom_again/shifts.csv"));
  // Other plans change only the float rounding.
  const std::vector<ShiftCsvRow> a = ReadShiftsCsv(dir + "/with_wisdom/shifts.csv");
  const std::vector<ShiftCsvRow> b = ReadShiftsCsv(dir + "/estimated/shifts.csv");
  REQUIRE(a.size() == 6);
  REQUIRE(b.size() == 6);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(a[i].shift_x_px - b[i].shift_x_px) < 1e-3);
    CHECK(std::abs(a[i].shift_y_px - b[i].shift_y_px) < 1e-3);
  }
}

TEST_CASE("a wisdom file FFTW rejects is reported and the plans are estimated",
          "[tools][fft_wisdom]") {
  const std::string dir = testing::ScratchDir("fft_wisdom_bad");
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  WriteNpy(dir + "/stack.npy", Simulate(sim, 4, 6).frames);
  std::ofstream(dir + "/garbage") << "(not fftw wisdom";
  for (const std::string& file : {dir + "/garbage", dir + "/missing"}) {
    CAPTURE(file);
    const testing::CommandResult run = testing::RunLivealign(
        "register " + dir + "/stack.npy --out " + dir + "/out", dir, "LIVEALIGN_FFTW_WISDOM=" + file);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK(run.output.find("FFT wisdom not used") != std::string::npos);
    CHECK(ReadJsonFile(dir + "/out/report.json")["fft_planning"] == "estimate");
  }
}

TEST_CASE("fft-wisdom refuses a size list it cannot plan", "[tools][fft_wisdom]") {
  const std::string dir = testing::ScratchDir("fft_wisdom_sizes");
  for (const char* sizes : {"12", "512x", ""}) {
    CAPTURE(sizes);
    const testing::CommandResult run =
        testing::RunLivealign(std::string("fft-wisdom --sizes '") + sizes + "' --out " + dir + "/w", dir);
    CHECK(run.exit_code != 0);
    CHECK_FALSE(std::filesystem::exists(dir + "/w"));
  }
}

}  // namespace
}  // namespace livealign
