// `livealign serve` as a write-ahead log, as a real process: kill -9 at random
// points of a 200-frame series with a re-sending sender, restart with the same
// command line, and the final shifts equal an uninterrupted run; SIGTERM under
// load loses no accepted frame.
//
// LIVEALIGN_KILL9_TRIALS (default 2) sets the number of kill -9 trials;
// tools/durability_trials runs 10 and prints the figure.
#include <catch2/catch.hpp>

#include <signal.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <regex>
#include <set>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "adapters/csv_writer.hpp"
#include "adapters/frame_journal.hpp"
#include "core/simulator.hpp"
#include "stream/codec.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using testing::ChildProcess;
using Clock = std::chrono::steady_clock;
constexpr std::chrono::seconds kTimeout{120};  // generous: loaded 2-core machines
constexpr int kFrames = 200;
// How far the sender runs ahead of the last frame with a drift message.
constexpr int kLead = 12;

std::chrono::milliseconds Left(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
}

SimulatedSeries TestSeries() {
  SimulatorOptions sim;
  sim.shape = Shape{96, 96};
  sim.initial_velocity_px_per_frame = Shift{0.08, -0.05};
  sim.dose_counts_per_px = 4.0;
  sim.frame_time_s = 0.1;
  return Simulate(sim, kFrames, 17);
}

// The sender of an acquisition that survives the daemon's crashes: it binds a
// PUSH socket (the daemon connects, so a restarted daemon finds it again) and
// re-sends every frame for which it has seen no drift message.
class ResendingSender {
 public:
  explicit ResendingSender(const SimulatedSeries& series) : series_(series) {
    push_.set(zmq::sockopt::linger, 0);
    push_.set(zmq::sockopt::sndtimeo, 2000);
    zmq_socket_monitor(push_.handle(), "inproc://durability-monitor",
                       ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED);
    monitor_.connect("inproc://durability-monitor");
    push_.bind("tcp://127.0.0.1:*");
    endpoint_ = push_.get(zmq::sockopt::last_endpoint);
  }
  ~ResendingSender() { zmq_socket_monitor(push_.handle(), nullptr, 0); }

  const std::string& endpoint() const { return endpoint_; }

  // Waits for the daemon's source socket to connect (ACCEPTED) or to be gone
  // (DISCONNECTED), so that no frame goes into the pipe of a dead daemon.
  bool WaitForEvent(int event) {
    const Clock::time_point deadline = Clock::now() + kTimeout;
    while (Left(deadline).count() > 0) {
      zmq::pollitem_t item{monitor_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, Left(deadline));
      if (!(item.revents & ZMQ_POLLIN)) return false;
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(monitor_, std::back_inserter(parts))) continue;
      std::uint16_t got = 0;
      std::memcpy(&got, parts[0].data(), sizeof(got));
      if (got == event) return true;
    }
    return false;
  }

  // A new daemon: subscribe to its results.
  void Connect(const std::string& publish) {
    sub_ = zmq::socket_t(context_, zmq::socket_type::sub);
    sub_.set(zmq::sockopt::subscribe, "drift");
    sub_.set(zmq::sockopt::subscribe, "series_end");
    sub_.connect(publish);
  }

  void SendSeriesStart() {
    SeriesStart start;
    start.series = kSeries;
    start.shape = series_.frames[0].shape();
    start.dtype = PixelType::kFloat32;
    start.frame_time_s = 0.1;
    start.expected_frames = kFrames;
    Send({EncodeSeriesStartHeader(start)});
  }
  void SendFrame(int i) {
    const Frame& frame = series_.frames[static_cast<std::size_t>(i)];
    FrameMessage m;
    m.series = kSeries;
    m.index = i;
    m.shape = frame.shape();
    m.dtype = PixelType::kFloat32;
    m.timestamp_s = series_.timestamps_s[static_cast<std::size_t>(i)];
    Send({EncodeFrameHeader(m),
          std::string(reinterpret_cast<const char*>(frame.data()), frame.pixels().size() * 4)});
  }
  void SendSeriesEnd() { Send({EncodeSeriesEndHeader(SeriesEnd{kSeries, kFrames})}); }

  // Re-sends, in order, every frame below `upto` without a drift message.
  void Resend(int upto) {
    for (int i = 0; i < upto; ++i) {
      if (durable_.count(i) == 0) SendFrame(i);
    }
  }

  // Takes the drift messages that arrived (waits up to `wait` for the first).
  // True when a series_end was seen.
  bool Poll(std::chrono::milliseconds wait) {
    bool ended = false;
    for (bool first = true;; first = false) {
      zmq::pollitem_t item{sub_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, first ? wait : std::chrono::milliseconds(0));
      if (!(item.revents & ZMQ_POLLIN)) return ended;
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(sub_, std::back_inserter(parts))) return ended;
      const std::string topic = parts[0].to_string();
      if (topic == "series_end") ended = true;
      if (topic != "drift" || parts.size() < 2) continue;
      // A drift message for frame k: k (and every frame it lists) is durable.
      const nlohmann::json drift = MsgpackToJson(parts[1].to_string_view());
      for (const auto& index : drift["frame_indices"]) durable_.insert(index.get<int>());
    }
  }

  int durable() const { return static_cast<int>(durable_.size()); }
  int max_durable() const { return durable_.empty() ? -1 : *durable_.rbegin(); }

 private:
  void Send(const std::vector<std::string>& parts) {
    // A send that times out (no daemon) is not an error: the frame has no
    // drift message and is re-sent.
    for (std::size_t k = 0; k < parts.size(); ++k) {
      const auto flags = k + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (!push_.send(zmq::buffer(parts[k]), flags)) return;
    }
  }

  const SeriesId kSeries = SeriesId::Str("kill9");
  const SimulatedSeries& series_;
  zmq::context_t context_{1};
  zmq::socket_t push_{context_, zmq::socket_type::push};
  zmq::socket_t monitor_{context_, zmq::socket_type::pair};
  zmq::socket_t sub_;
  std::string endpoint_;
  std::set<int> durable_;
};

std::vector<std::string> ServeArgs(const std::string& source, const std::string& out) {
  return {testing::LivealignBinary(), "serve", "--source", source, "--source-pattern", "pull",
          "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", "--out", out,
          "--http", "", "--log-events", "false"};
}

// Starts serve and returns its publish endpoint.
std::string StartServe(std::unique_ptr<ChildProcess>* serve, const std::vector<std::string>& args) {
  *serve = std::make_unique<ChildProcess>(args);
  const auto groups =
      (*serve)->WaitForLine(std::regex("results on (\\S+), control on (\\S+)"), kTimeout);
  REQUIRE(groups);
  return (*groups)[0];
}

// Runs the series through serve, killing it (SIGKILL) as soon as it has
// published the drift message of each of `kill_after`'s frames (with up to
// kLead later frames in flight or queued) and restarting it with the same
// command line. Returns the final shifts.
// The frames the restarted daemons said they recovered from the journal.
int RecoveredFrames(const std::string& log) {
  int total = 0;
  const std::regex line("resumed from \\S+: (\\d+) frame");
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    total += std::stoi((*it)[1].str());
  }
  return total;
}

std::vector<ShiftCsvRow> RunSeries(const SimulatedSeries& series, const std::string& out,
                                   const std::vector<int>& kill_after, int* restarts,
                                   int* recovered) {
  ResendingSender sender(series);
  std::string killed_logs;  // of the daemons killed; the last one's below
  const std::vector<std::string> args = ServeArgs(sender.endpoint(), out);
  std::unique_ptr<ChildProcess> serve;
  sender.Connect(StartServe(&serve, args));
  REQUIRE(sender.WaitForEvent(ZMQ_EVENT_ACCEPTED));
  sender.SendSeriesStart();
  std::size_t next_kill = 0;
  *restarts = 0;
  *recovered = 0;
  const Clock::time_point deadline = Clock::now() + 3 * kTimeout;
  for (int i = 0; (i < kFrames || next_kill < kill_after.size()) && Left(deadline).count() > 0;) {
    // An acquisition runs ahead of the registration by a few frames (they
    // are in flight or queued when the daemon dies, and are re-sent).
    if (i == kFrames || i - sender.max_durable() > kLead) {
      sender.Poll(std::chrono::milliseconds(200));
    } else {
      sender.SendFrame(i++);
      sender.Poll(std::chrono::milliseconds(0));
    }
    if (next_kill < kill_after.size() && sender.max_durable() >= kill_after[next_kill]) {
      ++next_kill;
      serve->Signal(SIGKILL);
      REQUIRE(serve->Wait() == -1);
      killed_logs += serve->ReadAll(kTimeout) + "\n";
      REQUIRE(sender.WaitForEvent(ZMQ_EVENT_DISCONNECTED));
      sender.Connect(StartServe(&serve, args));
      ++*restarts;
      REQUIRE(sender.WaitForEvent(ZMQ_EVENT_ACCEPTED));
      // Without any drift message the series_start may not have arrived:
      // sent again (a resumed series takes it as a duplicate).
      sender.SendSeriesStart();
      sender.Resend(i);
    }
  }
  // Until every frame is durable: wait for drift messages, re-send the rest
  // (frames whose drift message this subscriber missed while it joined).
  while (sender.durable() < kFrames && Left(deadline).count() > 0) {
    sender.Poll(std::chrono::milliseconds(2000));
    if (sender.durable() < kFrames) sender.Poll(std::chrono::milliseconds(2000));
    if (sender.durable() < kFrames) sender.Resend(kFrames);
  }
  REQUIRE(sender.durable() == kFrames);
  sender.SendSeriesEnd();
  bool ended = false;
  while (!ended && Left(deadline).count() > 0) ended = sender.Poll(std::chrono::milliseconds(1000));
  REQUIRE(ended);
  serve->Signal(SIGTERM);
  REQUIRE(serve->Wait() == 0);
  *recovered = RecoveredFrames(killed_logs + serve->ReadAll(kTimeout));
  const JournalScan journal = ScanFrameJournal(out + "/kill9/frames.journal");
  REQUIRE(journal.finished);
  REQUIRE(journal.frames.size() == static_cast<std::size_t>(kFrames));
  return ReadShiftsCsv(out + "/kill9/shifts.csv");
}

double MaxDifference(const std::vector<ShiftCsvRow>& a, const std::vector<ShiftCsvRow>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].frame == b[i].frame);
    worst = std::max(worst, std::hypot(a[i].shift_x_px - b[i].shift_x_px,
                                       a[i].shift_y_px - b[i].shift_y_px));
  }
  return worst;
}

TEST_CASE("serve killed with SIGKILL at random points resumes to the uninterrupted result",
          "[tools][serve][durability][kill9]") {
  const SimulatedSeries series = TestSeries();
  const std::string root = testing::ScratchDir("serve_kill9");
  int restarts = 0;
  int recovered = 0;
  const std::vector<ShiftCsvRow> reference =
      RunSeries(series, root + "/reference", {}, &restarts, &recovered);
  REQUIRE(recovered == 0);
  REQUIRE(reference.size() == static_cast<std::size_t>(kFrames));

  const char* env = std::getenv("LIVEALIGN_KILL9_TRIALS");
  const int trials = env != nullptr ? std::max(1, std::atoi(env)) : 2;
  std::mt19937 rng(20261201);
  double worst = 0;
  int total_recovered = 0;
  for (int trial = 0; trial < trials; ++trial) {
    // Two kills: one in the first half, one later.
    const int first = 5 + static_cast<int>(rng() % 90);
    const int second = first + 10 + static_cast<int>(rng() % static_cast<unsigned>(kFrames - first - 12));
    CAPTURE(trial, first, second);
    const std::string out = root + "/trial" + std::to_string(trial);
    const std::vector<ShiftCsvRow> shifts =
        RunSeries(series, out, {first, second}, &restarts, &recovered);
    REQUIRE(restarts == 2);
    // The restarts did resume from the journal (the first kill comes after
    // frame 5, by when the daemon has accepted frames).
    CHECK(recovered > 0);
    total_recovered += recovered;
    const double difference = MaxDifference(reference, shifts);
    CHECK(difference <= 1e-3);
    worst = std::max(worst, difference);
  }
  // The figure tools/durability_trials prints.
  std::printf("kill -9 trials: %d x 2 kills of a %d-frame series, %d frames recovered from "
              "journals; max |shift - uninterrupted| = %.3g px\n",
              trials, kFrames, total_recovered, worst);
}

TEST_CASE("SIGTERM under load registers every frame received", "[tools][serve][durability]") {
  // 200 frames pushed as fast as the daemon takes them, SIGTERM right after
  // the last: every frame is registered (none discarded), and written.
  const SimulatedSeries series = TestSeries();
  const std::string out = testing::ScratchDir("serve_sigterm");
  ResendingSender sender(series);
  std::unique_ptr<ChildProcess> serve;
  sender.Connect(StartServe(&serve, ServeArgs(sender.endpoint(), out)));
  REQUIRE(sender.WaitForEvent(ZMQ_EVENT_ACCEPTED));
  sender.SendSeriesStart();
  for (int i = 0; i < kFrames; ++i) sender.SendFrame(i);
  serve->Signal(SIGTERM);
  REQUIRE(serve->Wait() == 0);
  const std::string log = serve->ReadAll(kTimeout);
  const std::smatch status = [&] {
    std::smatch m;
    std::regex_search(log, m, std::regex("stopped; status (\\{.*\\})"));
    return m;
  }();
  REQUIRE(status.size() == 2);
  const nlohmann::json s = nlohmann::json::parse(status[1].str());
  INFO(s.dump());
  CHECK(s["frames_discarded_on_stop"] == 0);
  CHECK(s["frames_accepted"] == s["frames_received"]);
  // Everything the sender handed to ZeroMQ reached the daemon and was
  // registered (the receiver drains the socket on stop).
  CHECK(s["frames_accepted"] == kFrames);
  const JournalScan journal = ScanFrameJournal(out + "/kill9/frames.journal");
  CHECK(journal.finished);
  CHECK(journal.frames.size() == static_cast<std::size_t>(s["frames_accepted"].get<int>()));
  const std::vector<ShiftCsvRow> shifts = ReadShiftsCsv(out + "/kill9/shifts.csv");
  CHECK(shifts.size() == static_cast<std::size_t>(s["frames_accepted"].get<int>()));
}

}  // namespace
}  // namespace livealign
