// `livealign simulate --feedback` closing the scan-feedback loop through a real
// `livealign serve`: the field of view follows the daemon's predicted_shift_px,
// so the frames keep far less drift than the same specimen open loop.
#include <catch2/catch.hpp>

#include <signal.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include "adapters/csv_writer.hpp"
#include "core/shift.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using testing::ChildProcess;
constexpr std::chrono::seconds kTimeout{120};  // generous: loaded 2-core machines

struct Endpoints {
  std::string source, publish, control;
};

// simulate's --truth file: frame, shift_x_px, shift_y_px first.
std::vector<Shift> ReadTruth(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  std::vector<Shift> shifts;
  while (std::getline(in, line)) {
    std::stringstream fields(line);
    std::string frame, x, y;
    std::getline(fields, frame, ',');
    std::getline(fields, x, ',');
    std::getline(fields, y, ',');
    shifts.push_back(Shift{std::stod(x), std::stod(y)});
  }
  return shifts;
}

struct Figures {
  double left_step = 0, left_rms = 0, left_max = 0, open_step = 0, open_rms = 0, open_max = 0;
  double prediction_error = 0;
};

// Runs simulate with `mode` (--feedback or --observe) against a fresh serve and
// reads the two summary lines it prints.
Figures RunSimulate(const std::string& dir, const std::string& mode) {
  ChildProcess serve({testing::LivealignBinary(), "serve", "--source", "tcp://127.0.0.1:*",
                      "--source-bind", "true", "--source-pattern", "pull", "--publish",
                      "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", "--out", dir + "/out",
                      "--http", "", "--threads", "1"});
  const auto ep = serve.WaitForLine(
      std::regex("frames from (\\S+) .*results on (\\S+), control on (\\S+)"), kTimeout);
  REQUIRE(ep);
  ChildProcess simulate({testing::LivealignBinary(), "simulate", "--publish", (*ep)[0], "--pattern",
                         "push", "--results", (*ep)[1], "--control", (*ep)[2], mode, "--frames", "30",
                         "--size", "128", "--rate", "0", "--dose", "2", "--series", "loop", "--truth",
                         dir + "/truth.csv"},
                        /*capture_stdout=*/true);
  REQUIRE(simulate.Wait() == 0);
  const std::string out = simulate.ReadAll(std::chrono::seconds(10));
  INFO(out);
  const std::string number = "([-0-9.eE+]+)";
  std::smatch drift, prediction;
  REQUIRE(std::regex_search(out, drift, std::regex(": median step " + number + " px/frame, rms " + number +
                                                   " px, max " + number + " px; open loop: median step " +
                                                   number + " px/frame, rms " + number + " px, max " +
                                                   number + " px")));
  REQUIRE(std::regex_search(out, prediction, std::regex("prediction: median error " + number)));
  REQUIRE(serve.WaitForLine(std::regex("series loop ended"), kTimeout));
  serve.Signal(SIGTERM);
  CHECK(serve.Wait() == 0);
  Figures f;
  double* fields[] = {&f.left_step, &f.left_rms, &f.left_max, &f.open_step, &f.open_rms, &f.open_max};
  for (int k = 0; k < 6; ++k) *fields[k] = std::stod(drift[k + 1]);
  f.prediction_error = std::stod(prediction[1]);
  return f;
}

TEST_CASE("simulate --feedback keeps the field of view on the specimen", "[tools][live][feedback]") {
  const std::string dir = testing::ScratchDir("simulate_feedback");
  const Figures closed = RunSimulate(dir, "--feedback");
  WARN("with feedback: rms " << closed.left_rms << " px, max " << closed.left_max
       << " px; open loop: rms " << closed.open_rms << " px, max " << closed.open_max << " px");
  CHECK(closed.open_max > 5.0);  // the specimen really drifts
  CHECK(closed.left_rms < 0.2 * closed.open_rms);
  CHECK(closed.left_max < 0.25 * closed.open_max);
  CHECK(closed.left_step < closed.open_step);
  // The daemon registered what the frames showed: the shifts left after the
  // scan moved (truth.csv holds them with --feedback).
  const std::vector<ShiftCsvRow> measured = ReadShiftsCsv(dir + "/out/loop/shifts.csv");
  const std::vector<Shift> truth = ReadTruth(dir + "/truth.csv");
  REQUIRE(measured.size() == 30);
  REQUIRE(truth.size() == 30);
  for (std::size_t k = 0; k < measured.size(); ++k) {
    CAPTURE(k);
    CHECK(std::hypot(measured[k].shift_x_px - truth[k].x, measured[k].shift_y_px - truth[k].y) < 0.2);
  }
}

TEST_CASE("simulate --observe: the prediction errs by less than the drift per frame",
          "[tools][live][feedback]") {
  const Figures open = RunSimulate(testing::ScratchDir("simulate_observe"), "--observe");
  WARN("open loop: median next-frame prediction error " << open.prediction_error
       << " px, median drift " << open.open_step << " px/frame");
  CHECK(open.left_rms == open.open_rms);  // nothing moved
  CHECK(open.prediction_error < 0.5 * open.open_step);
}

}  // namespace
}  // namespace livealign
