// Resuming a series from its journal keeps what the first run had: each
// frame's scan_offset_px (scan feedback) and every channel of a
// several-detector series. The crash is the journal as a kill -9 leaves it
// (copied before the daemon writes its finish record); real TCP sockets on
// 127.0.0.1, tracer engines for the numbers.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>

#include "adapters/frame_journal.hpp"
#include "stream/codec.hpp"
#include "stream/daemon.hpp"
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

const Shape kShape{8, 6};

struct Message {
  std::string topic;
  Json header;
  std::string data;
};

// Every message the daemon publishes, from its first one on (the `resumed`
// event and the drift after the replay are published at Start()).
class Sink : public ResultSink {
 public:
  void Publish(const OutMessage& message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    messages_.push_back({message.topic, MsgpackToJson(message.header), message.data});
    changed_.notify_all();
  }
  // The first message of `topic` whose header satisfies `accept`; an empty
  // topic at the timeout.
  Message WaitFor(const std::string& topic, const std::function<bool(const Json&)>& accept) {
    std::unique_lock<std::mutex> lock(mutex_);
    Message found;
    changed_.wait_for(lock, kTimeout, [&] {
      for (const Message& m : messages_) {
        if (m.topic == topic && accept(m.header)) {
          found = m;
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Message> messages_;
};

// Registers on one channel as TracerEngine does and averages every other
// channel with a plain mean, so that a test can see which frames of each
// channel reached the engine.
class ChannelTracerEngine : public testing::TracerEngine {
 public:
  explicit ChannelTracerEngine(Shape shape) : TracerEngine(shape), shape_(shape) {}
  void SetChannels(const std::vector<std::string>& channels,
                   const std::string& register_channel) override {
    channels_ = channels;
    register_channel_ = register_channel;
    for (const std::string& c : channels) sums_.emplace(c, Frame(shape_));
  }
  RegistrationResult AddChannelFrames(std::vector<Frame> frames) override {
    if (frames.size() != channels_.size()) throw std::invalid_argument("wrong channel count");
    std::size_t registered = 0;
    for (std::size_t c = 0; c < channels_.size(); ++c) {
      if (channels_[c] == register_channel_) registered = c;
    }
    const Frame kept = frames[registered].Clone();
    RegistrationResult report = AddFrame(std::move(frames[registered]));
    frames[registered] = kept.Clone();
    for (std::size_t c = 0; c < channels_.size(); ++c) {
      float* sum = sums_.at(channels_[c]).data();
      for (std::size_t i = 0; i < frames[c].pixels().size(); ++i) sum[i] += frames[c].data()[i];
    }
    ++count_;
    return report;
  }
  AverageImage ChannelAverage(const std::string& channel) const override {
    AverageImage a;
    a.full = sums_.at(channel).Clone();
    for (std::size_t i = 0; i < a.full.pixels().size(); ++i) {
      a.full.data()[i] /= static_cast<float>(count_);
    }
    a.valid = AverageImage::Rect{0, shape_.rows, 0, shape_.cols};
    a.num_included = count_;
    return a;
  }

 private:
  Shape shape_;
  std::vector<std::string> channels_;
  std::string register_channel_;
  std::map<std::string, Frame> sums_;
  int count_ = 0;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
}

std::string Bytes(const std::vector<float>& pixels) {
  return std::string(reinterpret_cast<const char*>(pixels.data()), pixels.size() * sizeof(float));
}

// Frame i of the test series: tracer shift (0.5 i, -0.25 i), scan offset
// (0.3 i, -0.2 i).
FrameMessage OffsetFrame(const SeriesId& series, frame_id_t i) {
  FrameMessage header = FrameHeaderFor(series, i, kShape);
  header.scan_offset_px = Shift{0.3 * static_cast<double>(i), -0.2 * static_cast<double>(i)};
  return header;
}

TEST_CASE("a resumed series keeps each frame's scan_offset_px", "[stream][daemon][durability]") {
  const std::string out = testing::ScratchDir("daemon_resume_scan_offset");
  const SeriesId series = SeriesId::Int(7);
  const std::string journal = out + "/7/frames.journal";
  SeriesStart start{series, kShape, PixelType::kFloat32, {}, {}, 0.5, 20, {}};
  std::string crashed;
  Json uninterrupted;  // the drift for frame 9 of the first run
  {
    Sink sink;
    Daemon daemon(LocalDaemonOptions("pull", out), testing::TracerFactory());
    daemon.AddSink(&sink);
    daemon.Start();
    FrameSender sender(daemon.source_endpoint(), "push", false);
    REQUIRE(sender.WaitForPeer(kTimeout));
    sender.SendSeriesStart(start);
    for (int i = 0; i < 10; ++i) {
      const std::vector<float> pixels = TracerPixels(kShape, 0.5f * i, -0.25f * i);
      sender.SendFrame(OffsetFrame(series, i), pixels.data(), pixels.size() * sizeof(float));
    }
    uninterrupted = sink.WaitFor("drift", [](const Json& d) { return d["frame"] == 9; }).header;
    REQUIRE(uninterrupted.is_object());
    crashed = ReadFile(journal);
  }
  WriteFile(journal, crashed);
  const JournalScan scan = ScanFrameJournal(journal);
  REQUIRE(scan.frames.size() == 10);
  for (const JournalFrameEntry& entry : scan.frames) {
    REQUIRE(entry.scan_offset_px);
    CHECK(entry.scan_offset_px->x == 0.3 * static_cast<double>(entry.wire_index));
    CHECK(entry.scan_offset_px->y == -0.2 * static_cast<double>(entry.wire_index));
  }

  Sink sink;
  Daemon daemon(LocalDaemonOptions("pull", out), testing::TracerFactory());
  daemon.AddSink(&sink);
  daemon.Start();
  REQUIRE(sink.WaitFor("event", [](const Json& e) { return e["code"] == "resumed"; }).header
              .is_object());
  const Json resumed = sink.WaitFor("drift", [](const Json& d) { return d["frame"] == 9; }).header;
  REQUIRE(resumed.is_object());
  // The prediction adds the scan offsets back to the measured shifts: it is
  // the first run's only if the resumed series has them.
  CHECK(resumed["predicted_shift_px"] == uninterrupted["predicted_shift_px"]);
  CHECK(resumed["predicted_for_frame"] == uninterrupted["predicted_for_frame"]);
  CHECK(resumed["shift_x_px"] == uninterrupted["shift_x_px"]);
}

TEST_CASE("a two-channel series killed mid-series resumes with every frame of both channels",
          "[stream][daemon][durability][channels]") {
  const std::string out = testing::ScratchDir("daemon_resume_channels");
  const SeriesId series = SeriesId::Str("two");
  const std::string journal = out + "/two/frames.journal";
  constexpr int kFrames = 12;
  SeriesStart start{series, kShape, PixelType::kFloat32, {}, {}, 0.5, kFrames, {}};
  start.channels = {"BF", "HAADF"};
  start.register_channel = "HAADF";
  // BF frame i is i + 1 everywhere: the BF average of frames 0..n-1 is (n + 1) / 2.
  auto send = [&](FrameSender& sender, int i) {
    FrameMessage header = FrameHeaderFor(series, i, kShape);
    header.channels = start.channels;
    const std::vector<float> bf(static_cast<std::size_t>(kShape.Pixels()),
                                static_cast<float>(i + 1));
    sender.SendRaw({EncodeFrameHeader(header), Bytes(bf),
                    Bytes(TracerPixels(kShape, 0.5f * i, -0.25f * i))});
  };
  const LiveEngineFactory factory = [](const EngineOptions&, Shape shape, std::shared_ptr<FrameStore>) {
    return std::make_unique<ChannelTracerEngine>(shape);
  };
  std::string crashed;
  {
    Sink sink;
    Daemon daemon(LocalDaemonOptions("pull", out), factory);
    daemon.AddSink(&sink);
    daemon.Start();
    FrameSender sender(daemon.source_endpoint(), "push", false);
    REQUIRE(sender.WaitForPeer(kTimeout));
    sender.SendSeriesStart(start);
    for (int i = 0; i < 6; ++i) send(sender, i);
    REQUIRE(sink.WaitFor("drift", [](const Json& d) { return d["frame"] == 5; }).header
                .is_object());
    crashed = ReadFile(journal);
  }
  // Killed while writing frame 6: its BF record is there, its HAADF one is not.
  const bool half_frame = GENERATE(false, true);
  CAPTURE(half_frame);
  WriteFile(journal, crashed);
  if (half_frame) {
    FrameJournalWriter writer = FrameJournalWriter::Continue(
        journal, ScanFrameJournal(journal).valid_bytes, FrameJournalWriter::Options{});
    const std::vector<float> bf(static_cast<std::size_t>(kShape.Pixels()), 7.0f);
    writer.AppendFrame(JournalFrameEntry{6, 6, "BF", 3.0, kShape, 0, std::nullopt}, FrameView(bf.data(), kShape));
  }

  Sink sink;
  Daemon daemon(LocalDaemonOptions("pull", out), factory);
  daemon.AddSink(&sink);
  daemon.Start();
  const Json resumed =
      sink.WaitFor("event", [](const Json& e) { return e["code"] == "resumed"; }).header;
  REQUIRE(resumed.is_object());
  CHECK(resumed["recovered_frames"] == 6);
  // The sender re-sends from frame 3 on (it had drift messages up to 5 at most).
  FrameSender sender(daemon.source_endpoint(), "push", false);
  REQUIRE(sender.WaitForPeer(kTimeout));
  sender.SendSeriesStart(start);
  for (int i = 3; i < kFrames; ++i) send(sender, i);
  sender.SendSeriesEnd(SeriesEnd{series, kFrames});
  const Message end = sink.WaitFor("series_end", [](const Json&) { return true; });
  REQUIRE(end.header.is_object());
  CHECK(end.header["n_frames"] == kFrames);
  const Json final_drift =
      sink.WaitFor("drift", [](const Json& d) { return d.value("final", false); }).header;
  REQUIRE(final_drift.is_object());
  Json indices = Json::array();
  for (int i = 0; i < kFrames; ++i) indices.push_back(i);
  CHECK(final_drift["frame_indices"] == indices);
  const Message bf = sink.WaitFor("average", [](const Json& a) {
    return a.value("channel", "") == "BF" && a["n_frames"] == kFrames;
  });
  REQUIRE(bf.data.size() == static_cast<std::size_t>(kShape.Pixels()) * sizeof(float));
  float first = 0;
  std::memcpy(&first, bf.data.data(), sizeof(float));
  CHECK(first == Approx((kFrames + 1) / 2.0));
  // The journal holds both channels of every frame once, and is finished.
  const JournalScan scan = ScanFrameJournal(journal);
  CHECK(scan.frames.size() == 2 * kFrames);
  CHECK(scan.finished);
}

}  // namespace
}  // namespace livealign
