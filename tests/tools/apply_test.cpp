// End-to-end tests of `livealign apply`: the real binary on real files.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "adapters/csv_writer.hpp"
#include "adapters/npy_writer.hpp"
#include "adapters/tiff_io.hpp"
#include "core/averager.hpp"
#include "core/simulator.hpp"
#include "tests/support/run_livealign.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

// `livealign apply ARGS`.
testing::CommandResult Apply(const std::string& args, const std::string& log_dir) {
  return testing::RunLivealign("apply " + args, log_dir);
}

TEST_CASE("apply averages a stack with given shifts exactly as the averager does", "[tools][apply]") {
  const std::string dir = testing::ScratchDir("apply_shifts");
  SimulatorOptions sim;
  sim.shape = Shape{96, 96};
  sim.dose_counts_per_px = 3.0;
  SimulatedSeries series = Simulate(sim, 8, 4);
  WriteNpy(dir + "/stack.npy", series.frames);
  std::vector<ShiftCsvRow> rows;
  for (int i = 0; i < 8; ++i) {
    // The true shifts rounded as shifts.csv writes them; frame 5 flagged.
    const Shift s = series.true_shifts[i];
    rows.push_back({i, std::round(s.x * 1e4) / 1e4, std::round(s.y * 1e4) / 1e4, 0.01, i == 5});
  }
  WriteShiftsCsv(dir + "/shifts.csv", rows);
  const testing::CommandResult run =
      Apply(dir + "/shifts.csv " + dir + "/stack.npy --out " + dir + "/out", dir);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  ShiftedAverager reference;
  for (int i = 0; i < 8; ++i) {
    reference.AddFrame(std::move(series.frames[i]), Shift{rows[i].shift_x_px, rows[i].shift_y_px},
                       !rows[i].flagged);
  }
  const AverageImage want = reference.Average();
  const FrameStack full = ReadTiff(dir + "/out/average_full.tif");
  REQUIRE(full.frames.size() == 1);
  REQUIRE(full.frames[0].shape() == want.full.shape());
  double worst = 0;
  for (std::size_t p = 0; p < want.full.pixels().size(); ++p) {
    worst = std::max(worst, double(std::fabs(full.frames[0].data()[p] - want.full.data()[p])));
  }
  CHECK(worst < 1e-6);
  CHECK(ReadTiff(dir + "/out/average.tif").frames[0].shape() == want.common.shape());
  CHECK(std::filesystem::exists(dir + "/out/average.png"));
  const auto report = nlohmann::json::parse(std::ifstream(dir + "/out/report.json"));
  CHECK(report["num_included"] == 7);
}

TEST_CASE("apply refuses shifts that do not fit the stack in one line and exits non-zero",
          "[tools][apply]") {
  const std::string dir = testing::ScratchDir("apply_bad");
  SimulatorOptions sim;
  sim.shape = Shape{32, 32};
  WriteNpy(dir + "/stack.npy", Simulate(sim, 3, 1).frames);
  WriteShiftsCsv(dir + "/long.csv", {{0, 0, 0, 0, false}, {7, 1, 1, 0, false}});
  testing::CommandResult run = Apply(dir + "/long.csv " + dir + "/stack.npy --out " + dir + "/o1", dir);
  CHECK(run.exit_code != 0);
  CHECK(run.output.find("frame 7") != std::string::npos);
  WriteShiftsCsv(dir + "/twice.csv", {{0, 0, 0, 0, false}, {0, 1, 1, 0, false}});
  run = Apply(dir + "/twice.csv " + dir + "/stack.npy --out " + dir + "/o2", dir);
  CHECK(run.exit_code != 0);
  CHECK(run.output.find("twice") != std::string::npos);
  std::ofstream(dir + "/bad.csv") << "frame,x\n0,1\n";
  CHECK(Apply(dir + "/bad.csv " + dir + "/stack.npy --out " + dir + "/o3", dir).exit_code != 0);
  CHECK(Apply(dir + "/none.csv " + dir + "/stack.npy --out " + dir + "/o4", dir).exit_code != 0);
  CHECK_FALSE(std::filesystem::exists(dir + "/o1/average.tif"));
}

}  // namespace
}  // namespace livealign
