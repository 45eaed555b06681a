// The daemon's parts on their own, without sockets or threads: the control
// token check, the publisher's order and latest headers, the series part's
// validation and counts, and the receiver's loss accounting. Each part is
// driven by calling the function its thread would call (one test runs the
// receiver on a thread of its own, to show it blocked).

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "stream/codec.hpp"
#include "stream/daemon_control.hpp"
#include "stream/daemon_receiver.hpp"
#include "stream/result_publisher.hpp"
#include "stream/series_runner.hpp"
#include "stream_test_util.hpp"

namespace livealign {
namespace {

using testing::FrameHeaderFor;
using testing::TracerFactory;
using testing::TracerPixels;

// Keeps every message it is given, in order.
class RecordingSink : public ResultSink {
 public:
  void Publish(const OutMessage& message) override { messages.push_back(message); }
  std::vector<OutMessage> messages;
  std::vector<nlohmann::json> Headers(const std::string& topic) const {
    std::vector<nlohmann::json> out;
    for (const OutMessage& m : messages) {
      if (m.topic == topic) out.push_back(MsgpackToJson(m.header));
    }
    return out;
  }
};

DaemonOptions QuietOptions() {
  DaemonOptions o;
  o.log_events = false;
  o.engine.threads = 1;
  return o;
}

zmq::message_t PixelPart(const std::vector<float>& pixels) {
  return zmq::message_t(pixels.data(), pixels.size() * sizeof(float));
}

// The parts of a frame message as they come off the socket.
std::vector<zmq::message_t> FrameParts(const SeriesId& id, frame_id_t index, Shape shape,
                                       const std::vector<float>& pixels) {
  std::vector<zmq::message_t> parts;
  parts.emplace_back(EncodeFrameHeader(FrameHeaderFor(id, index, shape)));
  parts.push_back(PixelPart(pixels));
  return parts;
}

InboundItem FrameItem(const SeriesId& id, frame_id_t index, Shape shape, float x, float y) {
  InboundItem item;
  FrameMessage f = FrameHeaderFor(id, index, shape);
  item.payload = PixelPart(TracerPixels(shape, x, y));
  f.payload_bytes = item.payload.size();
  item.message = f;
  item.arrival = std::chrono::steady_clock::now();
  return item;
}

TEST_CASE("ControlRefusal: status and snapshot stay open, state changes need the exact token",
          "[stream][daemon_parts]") {
  DaemonOptions o = QuietOptions();
  auto refusal = [&](const std::string& cmd, const std::string& token) {
    return ControlRefusal(o, ControlRequest{cmd, token, {}});
  };
  CHECK(refusal("reset", "").empty());  // not required: everything runs
  o.control_token_required = true;
  CHECK(refusal("status", "").empty());
  CHECK(refusal("snapshot", "").empty());
  CHECK(refusal("save", "x").find("without --control-token-file") != std::string::npos);
  o.control_token = "s3cret";
  CHECK(refusal("save", "s3cret").empty());
  CHECK(refusal("shutdown", "").find("has no token") != std::string::npos);
  CHECK(refusal("reset", "s3cre").find("wrong token") != std::string::npos);
  CHECK(refusal("reset", "s3cret!").find("wrong token") != std::string::npos);
  CHECK(refusal("reset", "S3cret").find("wrong token") != std::string::npos);
}

TEST_CASE("ResultPublisher sends in order to its sinks and keeps the latest header per topic",
          "[stream][daemon_parts]") {
  DaemonCounters counters;
  ResultPublisher publisher(&counters, false);
  RecordingSink sink;
  publisher.AddSink(&sink);
  const SeriesId id = SeriesId::Int(4);
  DriftUpdate drift;
  drift.series = id;
  drift.frame = 0;
  drift.frame_indices = {0};
  FrameState frame0;
  frame0.index = 0;
  drift.frames = {frame0};
  publisher.PublishDrift(drift, std::chrono::steady_clock::now());
  publisher.EmitEvent(Event::Info("series_started", "hello", id));
  publisher.Publish(EncodeQuality(id, EngineQuality{}, nullptr, std::nullopt, nullptr));
  publisher.Close();
  CHECK_FALSE(publisher.Publish(EncodeEvent(Event::Info("late", "after Close"))));
  publisher.Run();  // returns: closed, and everything queued is sent

  REQUIRE(sink.messages.size() == 3);
  CHECK(sink.messages[0].topic == "drift");
  CHECK(sink.messages[1].topic == "event");
  CHECK(sink.messages[2].topic == "quality");
  const nlohmann::json sent_drift = MsgpackToJson(sink.messages[0].header);
  CHECK(sent_drift["latency_ms"].get<double>() >= 0);  // filled in when sent
  const LatestHeaders latest = publisher.Latest();
  CHECK(latest.drift == sink.messages[0].header);
  CHECK(latest.quality == sink.messages[2].header);
  CHECK(latest.average.empty());
  REQUIRE(latest.drift_latency_ms.has_value());
  CHECK(counters.Snapshot().messages_published == 3);
  publisher.ClearLatest();
  CHECK(publisher.Latest().drift.empty());
  CHECK(publisher.Latest().drift_latency_ms.has_value());  // status keeps the last latency
}

// A SeriesRunner wired to its queue, a publisher and a recording sink, as the
// daemon wires it, without sockets or threads.
struct SeriesRig {
  explicit SeriesRig(DaemonOptions o = QuietOptions(), QueueWaitEstimate* wait = nullptr)
      : options(std::move(o)), stop(options.drain_timeout_s), inbound(std::size_t{64} << 20, 0),
        publisher(&counters, false) {
    publisher.AddSink(&sink);
    runner = std::make_unique<SeriesRunner>(options, TracerFactory(), &inbound, &publisher, &counters,
                                            &stop, wait);
  }
  DaemonOptions options;
  DaemonCounters counters;
  StopSignal stop;
  InboundQueue inbound;
  ResultPublisher publisher;
  RecordingSink sink;
  std::unique_ptr<SeriesRunner> runner;  // last: destroyed first
};

TEST_CASE("SeriesRunner validates, registers and ends a series from the queue alone",
          "[stream][daemon_parts]") {
  SeriesRig rig;

  const SeriesId id = SeriesId::Str("parts");
  const Shape shape{8, 8};
  InboundItem start;
  start.message = SeriesStart{id, shape, PixelType::kFloat32, {}, {}, 0.1, 5, {}};
  rig.inbound.Push(std::move(start), 0);
  rig.inbound.Push(FrameItem(id, 0, shape, 0, 0), 1);
  rig.inbound.Push(FrameItem(id, 2, shape, 1, 2), 1);  // 1 is missing
  rig.inbound.Push(FrameItem(id, 2, shape, 1, 2), 1);  // duplicate
  rig.inbound.Push(FrameItem(id, 1, shape, 9, 9), 1);  // out of order
  rig.inbound.Push(FrameItem(id, 4, shape, 3, 6), 1);  // 3 is missing
  InboundItem end;
  end.message = SeriesEnd{id, 5};
  rig.inbound.Push(std::move(end), 0);
  rig.inbound.Close();
  rig.runner->Run();     // carries out the queue, then closes the publisher
  rig.publisher.Run();  // sends what it was given

  const DaemonCounts counts = rig.counters.Snapshot();
  CHECK(counts.frames_accepted == 3);
  CHECK(counts.frames_duplicate == 1);
  CHECK(counts.frames_dropped == 1);
  CHECK(counts.errors_by_code.at("out_of_order") == 1);
  CHECK(counts.frames_missing == 2);
  CHECK(counts.series_started == 1);
  CHECK(counts.series_completed == 1);
  CHECK_FALSE(rig.runner->Current().active);

  const std::vector<nlohmann::json> drifts = rig.sink.Headers("drift");
  REQUIRE(drifts.size() == 4);  // three frames and the final solve
  CHECK(drifts.back()["final"].get<bool>());
  CHECK(drifts.back()["frame_indices"] == nlohmann::json({0, 2, 4}));
  CHECK(drifts.back()["shift_y_px"][2].get<double>() == 6.0);
  std::vector<std::string> codes;
  for (const nlohmann::json& e : rig.sink.Headers("event")) codes.push_back(e["code"]);
  CHECK(std::count(codes.begin(), codes.end(), "frame_gap") == 2);
  CHECK(std::count(codes.begin(), codes.end(), "duplicate_frame") == 1);
  CHECK(rig.sink.messages.back().topic == "series_end");
}

TEST_CASE("SeriesRunner: SUB accepts no frame that waited longer than max_queue_wait_s, PULL all",
          "[stream][daemon_parts]") {
  const SeriesId id = SeriesId::Str("late");
  const Shape shape{8, 8};
  for (const std::string pattern : {"sub", "pull"}) {
    DYNAMIC_SECTION(pattern) {
      DaemonOptions options = QuietOptions();
      options.source_pattern = pattern;
      options.max_queue_wait_s = 2.5;
      QueueWaitEstimate wait;
      SeriesRig rig(options, &wait);

      // A burst the engine fell behind on: frames 2 and 3 were received 10 s
      // before the series thread takes them (the admission estimate let them
      // in), 0, 1 and 4 just now.
      const auto now = std::chrono::steady_clock::now();
      InboundItem start;
      start.message = SeriesStart{id, shape, PixelType::kFloat32, {}, {}, 0.1, 5, {}};
      rig.inbound.Push(std::move(start), 0);
      for (frame_id_t i = 0; i < 5; ++i) {
        InboundItem item = FrameItem(id, i, shape, static_cast<float>(i), 0);
        if (i == 2 || i == 3) item.arrival = now - std::chrono::seconds(10);
        rig.inbound.Push(std::move(item), 1);
      }
      InboundItem end;
      end.message = SeriesEnd{id, 5};
      rig.inbound.Push(std::move(end), 0);
      rig.inbound.Close();
      rig.runner->Run();
      rig.publisher.Run();

      const DaemonCounts counts = rig.counters.Snapshot();
      const std::vector<nlohmann::json> drifts = rig.sink.Headers("drift");
      REQUIRE_FALSE(drifts.empty());
      std::vector<std::int64_t> lost;
      for (const nlohmann::json& e : rig.sink.Headers("event")) {
        if (e["code"] == "queue_wait") lost.push_back(e["frame"].get<std::int64_t>());
      }
      if (pattern == "sub") {
        CHECK(counts.frames_accepted == 3);
        CHECK(counts.frames_lost == 2);
        CHECK(counts.errors_by_code.at("queue_wait") == 2);
        CHECK(lost == std::vector<std::int64_t>{2, 3});  // every lost index reported
        CHECK(drifts.back()["frame_indices"] == nlohmann::json({0, 1, 4}));
        // Every accepted frame's wait (arrival to engine) is within the bound.
        for (const nlohmann::json& d : drifts) {
          if (!d["final"].get<bool>()) CHECK(d["queue_ms"].get<double>() <= 2500.0);
        }
      } else {
        CHECK(counts.frames_accepted == 5);
        CHECK(counts.frames_lost == 0);
        CHECK(lost.empty());
        CHECK(drifts.back()["frame_indices"] == nlohmann::json({0, 1, 2, 3, 4}));
      }
    }
  }
}

TEST_CASE("SeriesRunner: a sender time that runs backwards or jumps becomes unknown, reported once",
          "[stream][daemon_parts]") {
  SeriesRig rig;

  const SeriesId id = SeriesId::Str("clock");
  const Shape shape{8, 8};
  // 0.1 s per frame, but frame 5 runs backwards and frame 7 jumps 100 s ahead.
  const std::vector<double> times = {0.0, 0.1, 0.2, 0.3, 0.4, 0.35, 0.6, 100.7, 0.8};
  for (frame_id_t i = 0; i < static_cast<frame_id_t>(times.size()); ++i) {
    InboundItem item = FrameItem(id, i, shape, static_cast<float>(i), 0);
    std::get<FrameMessage>(item.message).timestamp_s = times[i];
    rig.inbound.Push(std::move(item), 1);
  }
  rig.inbound.Close();
  rig.runner->Run();
  rig.publisher.Run();

  const DaemonCounts counts = rig.counters.Snapshot();
  CHECK(counts.frames_accepted == 9);  // the frames are registered, only their time is unknown
  CHECK(counts.errors_by_code.at("implausible_timestamp") == 2);
  std::vector<std::int64_t> reported;
  for (const nlohmann::json& e : rig.sink.Headers("event")) {
    if (e["code"] == "implausible_timestamp") reported.push_back(e["frame"].get<std::int64_t>());
  }
  CHECK(reported == std::vector<std::int64_t>{5});  // the first, once
  const std::vector<nlohmann::json> drifts = rig.sink.Headers("drift");
  REQUIRE_FALSE(drifts.empty());
  const nlohmann::json& stamps = drifts.back()["timestamp_s"];
  REQUIRE(stamps.size() == times.size());
  for (std::size_t i = 0; i < times.size(); ++i) {
    if (i == 5 || i == 7) {
      CHECK(stamps[i].is_null());
    } else {
      CHECK(stamps[i].get<double>() == Approx(times[i]));
    }
  }
}

TEST_CASE("DaemonReceiver: SUB counts a frame that finds the queue full, PULL never drops one",
          "[stream][daemon_parts]") {
  const Shape shape{16, 16};
  const SeriesId id = SeriesId::Int(1);
  const std::vector<float> pixels = TracerPixels(shape, 0, 0);
  auto frame_parts = [&](frame_id_t index) { return FrameParts(id, index, shape, pixels); };
  for (const std::string pattern : {"sub", "pull"}) {
    DYNAMIC_SECTION(pattern) {
      DaemonOptions options = QuietOptions();
      options.source_pattern = pattern;
      DaemonCounters counters;
      StopSignal stop(options.drain_timeout_s);
      // Room for one frame: the second finds the queue full.
      InboundQueue inbound(pixels.size() * sizeof(float) + kInboundItemOverheadBytes, 0);
      ResultPublisher publisher(&counters, false);
      DaemonReceiver receiver(options, &inbound, &publisher, &counters, &stop);

      std::vector<zmq::message_t> bad;
      bad.emplace_back(std::string("\xc1", 1));  // not msgpack
      CHECK(receiver.Handle(bad));
      auto first = frame_parts(0);
      CHECK(receiver.Handle(first));
      if (pattern == "sub") {
        auto second = frame_parts(1);
        CHECK(receiver.Handle(second));
        const DaemonCounts counts = counters.Snapshot();
        CHECK(counts.frames_lost == 1);
        CHECK(counts.errors_by_code.at("queue_full") == 1);
        CHECK(inbound.Size() == 1);
      } else {
        // PULL waits for room; a stopped queue ends the wait (and the receiver).
        inbound.Stop();
        auto second = frame_parts(1);
        CHECK_FALSE(receiver.Handle(second));
        CHECK(counters.Snapshot().frames_lost == 0);
      }
      const DaemonCounts counts = counters.Snapshot();
      CHECK(counts.messages_received == 3);
      CHECK(counts.bad_messages == 1);
      CHECK(counts.frames_received == 2);
    }
  }
}

// A receiver whose queue is bounded in time alone (max_queue_wait_s 2.5 s,
// bytes no bound), with the wait estimate the test sets; `options` may be
// changed afterwards (the receiver reads them live).
struct WaitBoundRig {
  explicit WaitBoundRig(const std::string& pattern) : options(Options(pattern)) {}
  static DaemonOptions Options(const std::string& pattern) {
    DaemonOptions o = QuietOptions();
    o.source_pattern = pattern;
    o.max_queue_wait_s = 2.5;
    return o;
  }
  std::vector<zmq::message_t> Parts(frame_id_t index) const {
    return FrameParts(SeriesId::Int(1), index, shape, pixels);
  }

  const Shape shape{16, 16};
  const std::vector<float> pixels = TracerPixels(shape, 0, 0);
  DaemonOptions options;
  DaemonCounters counters;
  StopSignal stop{options.drain_timeout_s};
  InboundQueue inbound{std::size_t{64} << 20, 0};
  ResultPublisher publisher{&counters, false};
  QueueWaitEstimate wait;
  DaemonReceiver receiver{options, &inbound, &publisher, &counters, &stop, &wait};
};

TEST_CASE("DaemonReceiver: SUB loses a frame that would wait longer than max_queue_wait_s",
          "[stream][daemon_parts]") {
  WaitBoundRig rig("sub");
  DaemonOptions& options = rig.options;
  DaemonCounters& counters = rig.counters;
  InboundQueue& inbound = rig.inbound;
  QueueWaitEstimate& wait = rig.wait;
  DaemonReceiver& receiver = rig.receiver;
  auto frame_parts = [&](frame_id_t index) { return rig.Parts(index); };

  // No frame timed yet: nothing is refused on a guess.
  for (frame_id_t i = 0; i < 3; ++i) {
    auto parts = frame_parts(i);
    CHECK(receiver.Handle(parts));
  }
  CHECK(inbound.Size() == 3);
  // One second per frame: with 3 queued a fourth would wait 4 s > 2.5 s.
  wait.RecordIntervalSeconds(1.0);
  auto late = frame_parts(3);
  CHECK(receiver.Handle(late));
  CHECK(inbound.Size() == 3);
  DaemonCounts counts = counters.Snapshot();
  CHECK(counts.frames_lost == 1);
  CHECK(counts.errors_by_code.at("queue_wait") == 1);
  // The series thread took two: one queued ahead, 2 s, fits again.
  InboundItem item;
  REQUIRE(inbound.Pop(&item));
  REQUIRE(inbound.Pop(&item));
  auto next = frame_parts(4);
  CHECK(receiver.Handle(next));
  CHECK(inbound.Size() == 2);
  CHECK(counters.Snapshot().frames_lost == 1);
  // 0 turns the bound off.
  options.max_queue_wait_s = 0;
  for (frame_id_t i = 5; i < 10; ++i) {
    auto parts = frame_parts(i);
    CHECK(receiver.Handle(parts));
  }
  CHECK(inbound.Size() == 7);
  CHECK(counters.Snapshot().frames_lost == 1);
}

TEST_CASE("DaemonReceiver: PULL holds a frame back while it would wait longer than max_queue_wait_s",
          "[stream][daemon_parts]") {
  WaitBoundRig rig("pull");
  DaemonCounters& counters = rig.counters;
  InboundQueue& inbound = rig.inbound;
  QueueWaitEstimate& wait = rig.wait;
  DaemonReceiver& receiver = rig.receiver;
  auto frame_parts = [&](frame_id_t index) { return rig.Parts(index); };

  // One second per frame: a frame may have one queued ahead (2 s), not two.
  wait.RecordIntervalSeconds(1.0);
  for (frame_id_t i = 0; i < 2; ++i) {
    auto parts = frame_parts(i);
    CHECK(receiver.Handle(parts));
  }
  CHECK(inbound.Size() == 2);
  std::atomic<int> handled{-1};  // -1 while Handle has not returned
  std::thread receiver_thread([&] {
    auto third = frame_parts(2);
    handled = receiver.Handle(third) ? 1 : 0;
  });
  // Observed without sleeping: the receiver is blocked in the queue's Push.
  CHECK(testing::WaitForBlockedProducers(inbound, 1));
  CHECK(handled.load() == -1);
  CHECK(inbound.Size() == 2);
  // The series thread takes one: the frame fits the bound and goes in.
  InboundItem item;
  REQUIRE(inbound.Pop(&item));
  receiver_thread.join();
  CHECK(handled.load() == 1);
  CHECK(inbound.Size() == 2);
  const DaemonCounts counts = counters.Snapshot();
  CHECK(counts.frames_lost == 0);
  CHECK(counts.frames_received == 3);
}

TEST_CASE("the page's requests: only matrices_window, and at most a few unanswered at a time",
          "[stream][daemon_parts]") {
  const DaemonOptions options = QuietOptions();
  DaemonCounters counters;
  StopSignal stop(options.drain_timeout_s);
  InboundQueue inbound(std::size_t{1} << 20, 0);  // nobody takes from it: nothing is answered
  ResultPublisher publisher(&counters, false);
  DaemonControl control(options, &inbound, &publisher, &counters, &stop,
                        [] { return nlohmann::json::object(); }, [] {});
  auto submit = [&](const nlohmann::json& request) {
    const std::vector<std::uint8_t> bytes = nlohmann::json::to_msgpack(request);
    control.SubmitPageRequest(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  };
  const nlohmann::json window{{"cmd", "matrices_window"}, {"i0", 0}, {"j0", 0}, {"n", 8}};
  submit({{"cmd", "reset"}});
  submit({{"cmd", "shutdown"}});
  CHECK(inbound.Size() == 0);
  CHECK_FALSE(stop.requested());
  for (int r = 0; r < 6; ++r) submit(window);
  CHECK(inbound.Size() == DaemonControl::kMaxPendingPageRequests);
  DaemonCounts counts = counters.Snapshot();
  CHECK(counts.errors_by_code.at("page_request_refused") == 2);
  CHECK(counts.errors_by_code.at("page_request_dropped") == 2);

  // The series thread answers one: there is room for one more.
  InboundItem item;
  REQUIRE(inbound.Pop(&item));
  ControlCommand& command = std::get<ControlCommand>(item.message);
  CHECK(command.cmd == "matrices_window");
  CHECK(command.window.n == 8);
  command.reply->set_value(nlohmann::json{{"ok", true}});
  submit(window);
  submit(window);
  CHECK(inbound.Size() == DaemonControl::kMaxPendingPageRequests);
  CHECK(counters.Snapshot().errors_by_code.at("page_request_dropped") == 3);
}

}  // namespace
}  // namespace livealign
