// The daemon as a write-ahead log (docs/protocol.md, "Durability"): every
// accepted frame is in out/<series>/frames.journal before it is registered;
// a daemon started on an unfinished journal resumes the series; frames sent
// again are harmless duplicates; Stop() drains the queue. Real TCP sockets on
// 127.0.0.1, the light TracerEngine for the numbers.
#include "stream/daemon.hpp"

#include <catch2/catch.hpp>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "adapters/frame_journal.hpp"
#include "stream/codec.hpp"
#include "stream/stream_clients.hpp"
#include "tests/stream/stream_test_util.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using testing::FrameHeaderFor;
using testing::kTimeout;
using testing::LocalDaemonOptions;
using testing::TracerPixels;
using Json = nlohmann::json;
namespace fs = std::filesystem;

const Shape kShape{8, 6};

// Collects every message the daemon publishes, from its first one on (a
// subscriber that connects after Start() would miss what is published at
// start, such as the `resumed` event).
class CollectingSink : public ResultSink {
 public:
  void Publish(const OutMessage& message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    messages_.push_back({message.topic, MsgpackToJson(message.header)});
    changed_.notify_all();
  }
  // The first message of `topic` (and `code`, for events) whose header
  // satisfies `accept`; null at the timeout.
  Json WaitFor(const std::string& topic, const std::string& code,
               const std::function<bool(const Json&)>& accept = nullptr) {
    std::unique_lock<std::mutex> lock(mutex_);
    Json found;
    changed_.wait_for(lock, kTimeout, [&] {
      for (const auto& [t, header] : messages_) {
        if (t == topic && (code.empty() || header.value("code", "") == code) &&
            (!accept || accept(header))) {
          found = header;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  int Count(const std::string& topic, const std::string& code) {
    std::lock_guard<std::mutex> lock(mutex_);
    int n = 0;
    for (const auto& [t, header] : messages_) n += t == topic && header.value("code", "") == code;
    return n;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::pair<std::string, Json>> messages_;
};

// A TracerEngine whose AddFrame waits until the test opens the gate, so that
// frames pile up in the daemon's queue exactly when the test wants them to.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  int waiting = 0;  // AddFrame calls blocked at the gate
  void Open() {
    std::lock_guard<std::mutex> lock(mutex);
    open = true;
    cv.notify_all();
  }
  bool WaitUntilBlocked() {
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, kTimeout, [&] { return waiting > 0; });
  }
};

class GatedEngine : public testing::TracerEngine {
 public:
  GatedEngine(Shape shape, Gate* gate) : TracerEngine(shape), gate_(gate) {}
  RegistrationResult AddFrame(Frame frame) override {
    std::unique_lock<std::mutex> lock(gate_->mutex);
    ++gate_->waiting;
    gate_->cv.notify_all();
    gate_->cv.wait(lock, [&] { return gate_->open; });
    --gate_->waiting;
    lock.unlock();
    return TracerEngine::AddFrame(std::move(frame));
  }

 private:
  Gate* gate_;
};

struct Client {
  // `sync`: synchronise a subscriber (SyncSubscriber sends `reset`, which
  // would abandon a resumed series; tests of resumes use a CollectingSink).
  explicit Client(Daemon& daemon, bool sync = true) {
    subscriber = std::make_unique<ResultSubscriber>(daemon.publish_endpoint());
    control = std::make_unique<ControlClient>(daemon.control_endpoint());
    if (sync) REQUIRE(SyncSubscriber(*subscriber, *control, kTimeout));
    sender = std::make_unique<FrameSender>(daemon.source_endpoint(), "push", false);
    REQUIRE(sender->WaitForPeer(kTimeout));
  }
  void Start(const SeriesId& series) {
    SeriesStart start;
    start.series = series;
    start.shape = kShape;
    start.dtype = PixelType::kFloat32;
    start.frame_time_s = 0.5;
    start.meta = Json{{"sample", "gold"}};
    sender->SendSeriesStart(start);
  }
  void SendFrame(const SeriesId& series, frame_id_t index) {
    const std::vector<float> pixels = TracerPixels(kShape, 0.5f * index, -0.25f * index);
    sender->SendFrame(FrameHeaderFor(series, index, kShape), pixels.data(),
                      pixels.size() * sizeof(float));
  }
  Json WaitStatus(const std::function<bool(const Json&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto status = control->Request("status", kTimeout);
      REQUIRE(status);
      if (done(*status)) return *status;
    }
    FAIL("status condition not reached");
    return {};
  }
  std::unique_ptr<ResultSubscriber> subscriber;
  std::unique_ptr<ControlClient> control;
  std::unique_ptr<FrameSender> sender;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_CASE("every accepted frame is journaled and the journal is finished at the series end",
          "[stream][daemon][durability]") {
  const std::string out = testing::ScratchDir("daemon_journal_basic");
  const SeriesId series = SeriesId::Str("j1");
  const std::string journal = out + "/j1/frames.journal";
  {
    Daemon daemon(LocalDaemonOptions("pull", out), testing::TracerFactory());
    daemon.Start();
    Client c(daemon);
    c.Start(series);
    for (int i = 0; i < 5; ++i) c.SendFrame(series, i);
    REQUIRE(c.subscriber->WaitFor("drift", kTimeout));
    // A drift message for frame k: frame k is in the journal.
    auto drift = c.subscriber->WaitFor("drift", kTimeout);
    while (drift && drift->header["frame"] != 4) drift = c.subscriber->WaitFor("drift", kTimeout);
    REQUIRE(drift);
    const JournalScan live = ScanFrameJournal(journal);
    REQUIRE(live.frames.size() == 5);
    REQUIRE_FALSE(live.finished);
    REQUIRE(FrameJournalFinished(journal) == false);
    c.sender->SendSeriesEnd(SeriesEnd{series, 5});
    REQUIRE(c.subscriber->WaitFor("series_end", kTimeout));
  }
  const JournalScan scan = ScanFrameJournal(journal);
  REQUIRE(scan.corruptions.empty());
  REQUIRE(scan.finished == std::optional<std::string>("series_end"));
  REQUIRE(FrameJournalFinished(journal));
  REQUIRE(scan.series);
  REQUIRE(scan.series->series == "j1");
  REQUIRE(scan.series->frame_time_s == std::optional<double>(0.5));
  REQUIRE(scan.series->meta == Json{{"sample", "gold"}});
  REQUIRE(scan.frames.size() == 5);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(scan.frames[i].index == i);
    REQUIRE(scan.frames[i].wire_index == i);
    REQUIRE(scan.frames[i].timestamp_s == 0.5 * i);
    const JournalFrame f = ReadJournalFrameAt(journal, scan.frames[i].offset);
    REQUIRE(f.pixels == TracerPixels(kShape, 0.5f * i, -0.25f * i));
  }
}

TEST_CASE("a daemon started on an unfinished journal resumes the series; re-sent frames are "
          "duplicates", "[stream][daemon][durability]") {
  const std::string out = testing::ScratchDir("daemon_journal_resume");
  const SeriesId series = SeriesId::Int(41);
  const std::string journal = out + "/41/frames.journal";
  std::string crashed;  // the journal as a kill -9 after frame 9 leaves it
  {
    Daemon daemon(LocalDaemonOptions("pull", out), testing::TracerFactory());
    daemon.Start();
    Client c(daemon);
    c.Start(series);
    for (int i = 0; i < 10; ++i) c.SendFrame(series, i);
    auto drift = c.subscriber->WaitFor("drift", kTimeout);
    while (drift && drift->header["frame"] != 9) drift = c.subscriber->WaitFor("drift", kTimeout);
    REQUIRE(drift);
    crashed = ReadFile(journal);
  }
  const bool torn = GENERATE(false, true);
  CAPTURE(torn);
  // The crash: the journal without its finish record (and, torn, with half
  // a record appended, as when the writer dies mid-write).
  std::string bytes = crashed;
  if (torn) bytes += crashed.substr(crashed.size() - 300, 120);
  std::ofstream(journal, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
  REQUIRE_FALSE(FrameJournalFinished(journal));

  CollectingSink sink;
  Daemon daemon(LocalDaemonOptions("pull", out), testing::TracerFactory());
  daemon.AddSink(&sink);
  daemon.Start();
  const Json resumed = sink.WaitFor("event", "resumed");
  REQUIRE_FALSE(resumed.is_null());
  CHECK(resumed["recovered_frames"] == 10);
  CHECK(resumed["dropped_records"] == (torn ? 1 : 0));
  CHECK(resumed["level"] == (torn ? "warning" : "info"));
  CHECK(resumed["series"] == 41);
  CHECK(resumed["frame"] == 9);
  Client c(daemon, /*sync=*/false);
  // The re-sending sender: series_start again, frames 6..9 again (it saw no
  // drift message for them), then new frames.
  c.Start(series);
  for (int i = 6; i < 15; ++i) c.SendFrame(series, i);
  c.sender->SendSeriesEnd(SeriesEnd{series, 15});
  const Json end = sink.WaitFor("series_end", "");
  REQUIRE_FALSE(end.is_null());
  CHECK(end["n_frames"] == 15);
  const Json final_drift =
      sink.WaitFor("drift", "", [](const Json& d) { return d.value("final", false); });
  REQUIRE_FALSE(final_drift.is_null());
  Json indices = Json::array();
  Json shifts = Json::array();
  for (int i = 0; i < 15; ++i) {
    indices.push_back(i);
    shifts.push_back(0.5 * i);
  }
  CHECK(final_drift["frame_indices"] == indices);
  CHECK(final_drift["shift_x_px"] == shifts);
  CHECK(sink.Count("event", "duplicate_frame") == 4);
  CHECK(sink.Count("event", "duplicate_series_start") == 1);
  const auto status = c.control->Request("status", kTimeout);
  REQUIRE(status);
  CHECK((*status)["frames_duplicate"] == 4);
  CHECK((*status)["frames_recovered"] == 10);
  CHECK((*status)["frames_dropped"] == 0);
  CHECK((*status)["journal_corruptions"] == (torn ? 1 : 0));
  // The journal now holds all 15 frames once, and is finished.
  const JournalScan scan = ScanFrameJournal(journal);
  CHECK(scan.corruptions.empty());
  CHECK(scan.frames.size() == 15);
  CHECK(scan.finished);
  const Json report = Json::parse(ReadFile(out + "/41/report.json"));
  CHECK(report["live"]["resumed"] == true);
  CHECK(report["meta"] == Json{{"sample", "gold"}});
}

TEST_CASE("a finished journal is not resumed", "[stream][daemon][durability]") {
  const std::string out = testing::ScratchDir("daemon_journal_finished");
  const SeriesId series = SeriesId::Str("done");
  {
    Daemon daemon(LocalDaemonOptions("pull", out), testing::TracerFactory());
    daemon.Start();
    Client c(daemon);
    c.Start(series);
    for (int i = 0; i < 3; ++i) c.SendFrame(series, i);
    c.sender->SendSeriesEnd(SeriesEnd{series, 3});
    REQUIRE(c.subscriber->WaitFor("series_end", kTimeout));
  }
  CollectingSink sink;
  Daemon daemon(LocalDaemonOptions("pull", out), testing::TracerFactory());
  daemon.AddSink(&sink);
  daemon.Start();
  Client c(daemon, /*sync=*/false);
  // The engine thread looks for journals before it takes any request, so a
  // status answered through it (save) comes after any resume.
  const auto save = c.control->Request("save", kTimeout);
  REQUIRE(save);
  CHECK((*save)["ok"] == false);  // no series is running
  const auto status = c.control->Request("status", kTimeout);
  REQUIRE(status);
  CHECK((*status)["state"] == "idle");
  CHECK((*status)["frames_recovered"] == 0);
  CHECK(sink.Count("event", "resumed") == 0);
}

TEST_CASE("Stop() registers every queued frame before finishing the series",
          "[stream][daemon][durability]") {
  const std::string out = testing::ScratchDir("daemon_drain");
  Gate gate;
  DaemonOptions options = LocalDaemonOptions("pull", out);
  const bool timeout = GENERATE(false, true);
  CAPTURE(timeout);
  if (timeout) options.drain_timeout_s = 0;  // what is queued at the stop is left
  CollectingSink sink;
  Daemon daemon(options, [&gate](const EngineOptions&, Shape shape, std::shared_ptr<FrameStore>) {
    return std::make_unique<GatedEngine>(shape, &gate);
  });
  daemon.AddSink(&sink);
  daemon.Start();
  Client c(daemon);
  const SeriesId series = SeriesId::Str("drain");
  constexpr int kFrames = 40;
  c.Start(series);
  for (int i = 0; i < kFrames; ++i) c.SendFrame(series, i);
  // Frame 0 is held in the engine, the other 39 wait in the queue.
  REQUIRE(gate.WaitUntilBlocked());
  c.WaitStatus([](const Json& s) { return s["frames_received"] == kFrames; });
  daemon.Stop();
  gate.Open();
  daemon.Wait();
  const Json status = daemon.Status();
  const Json end = sink.WaitFor("series_end", "");
  REQUIRE_FALSE(end.is_null());
  CHECK(end["reason"] == "shutdown");
  const JournalScan scan = ScanFrameJournal(out + "/drain/frames.journal");
  CHECK(scan.finished);
  if (!timeout) {
    CHECK(end["n_frames"] == kFrames);
    CHECK(status["frames_accepted"] == kFrames);
    CHECK(status["frames_discarded_on_stop"] == 0);
    CHECK(scan.frames.size() == kFrames);
  } else {
    // Only frame 0 was registered; the rest are counted and reported.
    CHECK(end["n_frames"] == 1);
    CHECK(status["frames_discarded_on_stop"] == kFrames - 1);
    CHECK(sink.Count("event", "drain_timeout") == 1);
    CHECK(scan.frames.size() == 1);
  }
}

}  // namespace
}  // namespace livealign
