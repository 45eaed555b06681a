// End-to-end tests of the streaming command-line tools as real processes over
// TCP on 127.0.0.1: simulate -> serve -> watch, and replay -> serve.
#include <catch2/catch.hpp>

#include <signal.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include "adapters/csv_writer.hpp"
#include "adapters/npy_writer.hpp"
#include "core/simulator.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using testing::ChildProcess;
constexpr std::chrono::seconds kTimeout{60};  // generous: loaded 2-core machines

struct Endpoints {
  std::string source, publish, control;
};

// Starts `livealign serve` on OS-chosen ports (PULL, bound) writing into out.
Endpoints StartServe(ChildProcess* serve) {
  const std::regex line("frames from (\\S+) .*results on (\\S+), control on (\\S+)");
  const auto groups = serve->WaitForLine(line, kTimeout);
  REQUIRE(groups);
  return {(*groups)[0], (*groups)[1], (*groups)[2]};
}

std::vector<std::string> ServeArgs(const std::string& out) {
  return {testing::LivealignBinary(), "serve", "--source", "tcp://127.0.0.1:*", "--source-bind",
          "true", "--source-pattern", "pull", "--publish", "tcp://127.0.0.1:*", "--control",
          "tcp://127.0.0.1:*", "--out", out, "--http", "", "--threads", "1"};
}

// Largest distance between the shifts in two CSV files (frame, x, y first).
double MaxDifference(const std::string& a_path, const std::string& b_path, int* rows) {
  const std::vector<ShiftCsvRow> a = ReadShiftsCsv(a_path);
  std::ifstream b(b_path);
  std::string line;
  std::getline(b, line);  // header
  double worst = 0;
  *rows = 0;
  for (std::size_t i = 0; std::getline(b, line) && i < a.size(); ++i) {
    std::stringstream fields(line);
    std::string frame, x, y;
    std::getline(fields, frame, ',');
    std::getline(fields, x, ',');
    std::getline(fields, y, ',');
    worst = std::max(worst, std::hypot(a[i].shift_x_px - std::stod(x), a[i].shift_y_px - std::stod(y)));
    ++*rows;
  }
  return worst;
}

TEST_CASE("simulate -> serve -> watch: every frame is shown and the shifts match the truth",
          "[tools][live]") {
  const std::string dir = testing::ScratchDir("live_tools_simulate");
  ChildProcess serve(ServeArgs(dir + "/out"));
  const Endpoints ep = StartServe(&serve);

  ChildProcess watch({testing::LivealignBinary(), "watch", "--connect", ep.publish, "--control",
                      ep.control, "--until-series-end", "--idle-timeout-s", "60"},
                     /*capture_stdout=*/true);
  // Its column header is printed once it has subscribed (and asked for a
  // snapshot); frames it still misses are back-filled from the drift arrays.
  REQUIRE(watch.WaitForLine(std::regex("frame\\s+shift_x"), kTimeout));

  ChildProcess simulate({testing::LivealignBinary(), "simulate", "--publish", ep.source,
                         "--pattern", "push", "--frames", "12", "--size", "128", "--rate", "20",
                         "--dose", "2", "--series", "cli", "--truth", dir + "/truth.csv"});
  CHECK(simulate.Wait() == 0);
  CHECK(watch.Wait() == 0);
  const std::string shown = watch.ReadAll(std::chrono::seconds(5));
  INFO(shown);
  for (int k = 0; k < 12; ++k) {
    CAPTURE(k);
    CHECK(std::regex_search(shown, std::regex("\\n\\s+" + std::to_string(k) + "\\s+-?[0-9]")));
  }
  CHECK(shown.find("ended") != std::string::npos);
  CHECK(shown.find("summary:") != std::string::npos);

  serve.Signal(SIGTERM);
  CHECK(serve.Wait() == 0);
  int rows = 0;
  const double worst = MaxDifference(dir + "/out/cli/shifts.csv", dir + "/truth.csv", &rows);
  CHECK(rows == 12);
  CHECK(worst < 0.2);
}

TEST_CASE("replay streams a stack file into serve, which registers it", "[tools][live]") {
  const std::string dir = testing::ScratchDir("live_tools_replay");
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  const SimulatedSeries series = Simulate(sim, 10, 31);
  WriteNpy(dir + "/stack.npy", series.frames);

  ChildProcess serve(ServeArgs(dir + "/out"));
  const Endpoints ep = StartServe(&serve);
  ChildProcess replay({testing::LivealignBinary(), "replay", dir + "/stack.npy", "--publish",
                       ep.source, "--pattern", "push", "--rate", "0", "--series", "replayed"});
  CHECK(replay.Wait() == 0);
  // serve logs one line when a series has ended and its outputs are written.
  REQUIRE(serve.WaitForLine(std::regex("series replayed ended \\(series_end\\): 10 frames"), kTimeout));
  serve.Signal(SIGTERM);
  CHECK(serve.Wait() == 0);

  const std::vector<ShiftCsvRow> rows = ReadShiftsCsv(dir + "/out/replayed/shifts.csv");
  REQUIRE(rows.size() == 10);
  for (int k = 0; k < 10; ++k) {
    CAPTURE(k);
    CHECK(std::hypot(rows[k].shift_x_px - series.true_shifts[k].x,
                     rows[k].shift_y_px - series.true_shifts[k].y) < 0.2);
  }
}

}  // namespace
}  // namespace livealign
