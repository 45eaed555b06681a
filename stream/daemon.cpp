#include "stream/daemon.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <future>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <variant>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "adapters/frame_journal.hpp"
#include "adapters/journal_frame_store.hpp"
#include "adapters/result_json.hpp"
#include "stream/bounded_queue.hpp"
#include "stream/codec.hpp"

namespace livealign {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// How often the socket threads look at the stop flag while idle.
constexpr long kPollMs = 50;
// Cost charged per queued item besides its payload (header, bookkeeping).
constexpr std::size_t kItemOverheadBytes = 256;
// Missing indices listed in one frame_gap event (the count is always exact).
constexpr std::size_t kMaxListedMissing = 1000;
// Messages the receiver still takes from the socket's buffers after a stop
// (those a sender already handed to ZeroMQ), so that they are drained too;
// bounded in count and time, so that a sender that keeps sending does not
// hold the stop up (what it sends later gets no drift message).
constexpr int kMaxDrainedOnStop = 100000;
constexpr double kMaxSocketDrainS = 1.0;
// The journal of each series, in its output directory.
constexpr const char* kJournalName = "frames.journal";

// "HAADF, ABF" (or "" for one unnamed channel), for messages.
std::string JoinChannels(const std::vector<std::string>& channels) {
  std::string joined;
  for (const std::string& c : channels) joined += (joined.empty() ? "" : ", ") + c;
  return joined;
}

void Log(const std::string& level, const std::string& line) {
  std::cerr << "livealign serve: " << level << ": " << line << std::endl;
}

// A request from the control thread that the engine thread must carry out.
struct ControlCommand {
  std::string cmd;  // "save" or "reset"
  std::shared_ptr<std::promise<nlohmann::json>> reply;
};

// One unit of work for the engine thread.
struct InboundItem {
  std::variant<SeriesStart, FrameMessage, SeriesEnd, ControlCommand> message;
  zmq::message_t payload;  // a frame's pixels (moved, never copied)
  std::vector<zmq::message_t> more_payloads;  // channels 2.. of a several-detector frame
  Clock::time_point arrival;
};

// One unit of output. A drift update is encoded by the publisher so that its
// latency_ms covers everything up to the moment it is sent.
struct OutItem {
  OutMessage message;
  bool is_drift = false;
  DriftUpdate drift;
  Clock::time_point arrival;  // of the frame a drift update is for
};

}  // namespace

bool DaemonOptions::Check(std::string* error) const {
  auto fail = [&](const std::string& message) {
    if (error != nullptr) *error = message;
    return false;
  };
  if (source.empty()) return fail("--source must not be empty");
  if (source_pattern != "sub" && source_pattern != "pull") {
    return fail("--source-pattern must be sub or pull, not '" + source_pattern + "'");
  }
  if (publish.empty()) return fail("--publish must not be empty");
  if (control.empty()) return fail("--control must not be empty");
  if (max_pixels <= 0 || max_pixels > (std::int64_t{1} << 30)) {
    return fail("--max-pixels must be in [1, 2^30]");
  }
  if (queue_bytes <= 0) return fail("--queue-bytes must be positive");
  if (!(average_interval_s >= 0)) return fail("--average-interval-s must be >= 0");
  if (!(quality_interval_s >= 0)) return fail("--quality-interval-s must be >= 0");
  if (!(save_interval_s >= 0)) return fail("--save-interval-s must be >= 0");
  if (keep_frames && out.empty()) return fail("--keep-frames needs --out");
  if (!(drain_timeout_s >= 0)) return fail("--drain-timeout-s must be >= 0");
  // `engine` is checked by the back end that uses it (Daemon(options) checks
  // it up front for the RegistrationEngine).
  return true;
}

nlohmann::json DaemonOptions::ToJson() const {
  return nlohmann::json{{"source", source},
                        {"source_pattern", source_pattern},
                        {"source_bind", source_bind},
                        {"publish", publish},
                        {"control", control},
                        {"out", out},
                        {"keep_frames", keep_frames},
                        {"max_pixels", max_pixels},
                        {"queue_bytes", queue_bytes},
                        {"average_interval_s", average_interval_s},
                        {"quality_interval_s", quality_interval_s},
                        {"save_interval_s", save_interval_s},
                        {"log_events", log_events},
                        {"drain_timeout_s", drain_timeout_s},
                        {"journal_sync", journal_sync}};
}

struct Daemon::Impl {
  Impl(const DaemonOptions& o, LiveEngineFactory f, std::atomic<bool>* stop)
      : options(o),
        factory(std::move(f)),
        stop_requested(stop),
        inbound(static_cast<std::size_t>(o.queue_bytes), 0),
        // Outbound holds encoded messages (averages are a frame each); its bound
        // only matters if sinks are slow, and then the engine waits.
        outbound(std::size_t{256} << 20, 0) {}

  // ---- shared state -------------------------------------------------------
  const DaemonOptions options;
  const LiveEngineFactory factory;
  std::atomic<bool>* const stop_requested;
  std::vector<ResultSink*> sinks;  // fixed after Start()
  zmq::context_t context{1};
  zmq::socket_t source_socket;
  zmq::socket_t publish_socket;
  zmq::socket_t control_socket;
  BoundedQueue<InboundItem> inbound;
  BoundedQueue<OutItem> outbound;
  std::thread receiver_thread, engine_thread, publisher_thread, control_thread;
  bool started = false;
  const Clock::time_point start_time = Clock::now();

  // The daemon's one mutex. It guards exactly the fields from here down to
  // last_drift/last_quality/last_average: the counters (written by the
  // receiver, engine and publisher threads), the current-series summary and
  // the latest headers (written by the engine/publisher), all read by the
  // control thread for `status` and `snapshot`. Nothing else takes it: each
  // socket belongs to one thread, the queues lock themselves, and the
  // engine-thread state below is touched by the engine thread only.
  mutable std::mutex state_mutex;
  std::int64_t messages_received = 0;
  std::int64_t bad_messages = 0;
  std::int64_t frames_received = 0;   // frames decoded by the receiver
  std::int64_t frames_accepted = 0;   // frames registered
  std::int64_t frames_dropped = 0;    // refused by validation or the engine
  std::int64_t frames_lost = 0;       // SUB with a full queue
  std::int64_t frames_missing = 0;    // gaps in the indices
  std::int64_t frames_discarded_on_stop = 0;
  std::int64_t frames_duplicate = 0;  // sent again after being accepted
  std::int64_t frames_recovered = 0;  // replayed from a journal on resume
  std::int64_t journal_corruptions = 0;  // corrupt stretches dropped on resume
  std::int64_t events_dropped = 0;    // events that found the output queue full
  std::int64_t series_started = 0;
  std::int64_t series_completed = 0;
  std::int64_t messages_published = 0;
  std::map<std::string, std::int64_t> errors_by_code;
  std::string current_series;         // "" when idle
  bool series_active = false;
  int current_frames = 0;
  double last_latency_ms = std::nan("");
  std::string last_drift, last_quality, last_average;  // headers, for snapshot

  // ---- engine-thread state (engine thread only; no lock) -------------------
  struct Series {
    SeriesStart start;
    bool implicit = false;
    EngineOptions engine_options;
    std::unique_ptr<LiveEngine> engine;
    RegistrationResult result;  // of the engine's latest update
    std::vector<frame_id_t> wire_indices;   // accepted, in order
    std::vector<Shift> scan_offsets_px;     // per accepted frame; (0, 0) without feedback
    std::set<frame_id_t> accepted;
    frame_id_t last_index = kInvalidFrameId;
    std::int64_t dropped = 0;
    std::int64_t missing = 0;
    Clock::time_point first_arrival;
    Clock::time_point last_average{};
    Clock::time_point last_save;
    bool have_average = false;
    // Latest image quality (republished with every quality message) and
    // whether its good/stop events were announced in this series.
    std::optional<ImageQualityReport> image_quality;
    // One entry per image-quality computation (QualityHistoryEntryJson:
    // n_frames, snr, resolution), so a client sees how the SNR
    // and resolution grow with the frames (published and in report.json).
    nlohmann::json quality_history = nlohmann::json::array();
    Clock::time_point last_image_quality{};
    bool good_announced = false;
    bool stop_announced = false;
    std::string dir;
    // The write-ahead journal (null without --out, or when it could not be
    // created: then frames are registered but not durable, and said so).
    std::unique_ptr<JournalFrameStore> journal;
    bool resumed = false;  // continued from a journal after a restart
    std::int64_t duplicates = 0;
  };
  std::unique_ptr<Series> series;
  // When Stop() was requested (the drain deadline counts from it).
  std::atomic<bool> draining{false};
  std::atomic<Clock::rep> stop_time_ticks{0};  // set before `draining`
  std::set<std::string> ended_series;  // SeriesId::ToString of finished series
  double last_queue_ms_ = 0;   // of the latest frame: arrival to AddFrame
  double last_engine_ms_ = 0;  // of the latest frame: AddFrame itself

  // ---- helpers ------------------------------------------------------------

  void CountError(const std::string& code) {
    std::lock_guard<std::mutex> lock(state_mutex);
    ++errors_by_code[code];
  }

  // Publishes an event from any thread. Never waits: if the output queue is
  // full the event is counted as dropped (the receiver must not block).
  void EmitEvent(Event event) {
    const std::string line = event.code + ": " + event.message +
                             (event.series ? " (series " + event.series->ToString() + ")" : "");
    if (event.level != "info" && options.log_events) Log(event.level, line);
    OutItem item;
    item.message = EncodeEvent(event);
    const std::size_t bytes = item.message.header.size();
    if (!outbound.TryPush(std::move(item), bytes)) {
      std::lock_guard<std::mutex> lock(state_mutex);
      ++events_dropped;
    }
  }

  void Publish(OutMessage message) {
    const std::size_t bytes = message.header.size() + message.data.size();
    OutItem item;
    item.message = std::move(message);
    outbound.Push(std::move(item), bytes);
  }

  // ---- receiver -----------------------------------------------------------

  void RunReceiver() {
    const bool pull = options.source_pattern == "pull";
    std::vector<zmq::message_t> parts;
    while (!stop_requested->load()) {
      zmq::pollitem_t item{source_socket.handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(kPollMs));
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) return;
        continue;  // EINTR
      }
      if (!(item.revents & ZMQ_POLLIN)) continue;
      // Drain what is ready, then look at the stop flag again.
      for (int burst = 0; burst < 64 && !stop_requested->load(); ++burst) {
        parts.clear();
        zmq::recv_result_t got;
        try {
          got = zmq::recv_multipart(source_socket, std::back_inserter(parts),
                                    zmq::recv_flags::dontwait);
        } catch (const zmq::error_t& e) {
          if (e.num() == ETERM) return;
          break;
        }
        if (!got) break;
        if (!HandleReceived(parts, pull)) return;
      }
    }
    DrainSocketOnStop(pull, parts);
    // The engine registers what is queued, then ends.
    inbound.Close();
  }

  // After a stop: takes what senders already handed to ZeroMQ (until the
  // socket has been quiet for one poll interval), so that those frames are
  // registered too rather than lost with the socket.
  void DrainSocketOnStop(bool pull, std::vector<zmq::message_t>& parts) {
    const Clock::time_point begin = Clock::now();
    for (int taken = 0; taken < kMaxDrainedOnStop && !DrainExpired() &&
                        std::chrono::duration<double>(Clock::now() - begin).count() <
                            kMaxSocketDrainS;) {
      zmq::pollitem_t item{source_socket.handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(kPollMs));
      } catch (const zmq::error_t&) {
        return;
      }
      if (!(item.revents & ZMQ_POLLIN)) return;
      for (; taken < kMaxDrainedOnStop; ++taken) {
        parts.clear();
        zmq::recv_result_t got;
        try {
          got = zmq::recv_multipart(source_socket, std::back_inserter(parts),
                                    zmq::recv_flags::dontwait);
        } catch (const zmq::error_t&) {
          return;
        }
        if (!got) break;
        if (!HandleReceived(parts, pull)) return;
      }
    }
  }

  // True once a stop was requested longer than drain_timeout_s ago.
  bool DrainExpired() const {
    if (!draining.load()) return false;
    const Clock::time_point stopped{Clock::duration(stop_time_ticks.load())};
    return std::chrono::duration<double>(Clock::now() - stopped).count() > options.drain_timeout_s;
  }

  // False when the queue was stopped (the daemon is ending).
  bool HandleReceived(std::vector<zmq::message_t>& parts, bool pull) {
    const Clock::time_point arrival = Clock::now();
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      ++messages_received;
    }
    std::vector<std::string_view> views;
    views.reserve(parts.size());
    for (const auto& part : parts) views.emplace_back(part.data<char>(), part.size());
    InboundMessage decoded;
    try {
      decoded = DecodeInbound(views, options.max_pixels);
    } catch (const DecodeError& e) {
      {
        std::lock_guard<std::mutex> lock(state_mutex);
        ++bad_messages;
        ++errors_by_code[e.code()];
      }
      EmitEvent(Event::Error(e.code(), std::string("message dropped: ") + e.what()));
      return true;
    }
    InboundItem item;
    item.arrival = arrival;
    std::size_t bytes = 0;
    if (auto* frame = std::get_if<FrameMessage>(&decoded)) {
      frame->payload = nullptr;  // the view dies with `parts`; the part moves
      item.payload = std::move(parts[1]);
      bytes = item.payload.size() + kItemOverheadBytes;
      for (std::size_t c = 2; c < parts.size(); ++c) {
        bytes += parts[c].size();
        item.more_payloads.push_back(std::move(parts[c]));
      }
      std::lock_guard<std::mutex> lock(state_mutex);
      ++frames_received;
    }
    const bool is_frame = bytes > 0;
    const SeriesId series_id = std::visit([](const auto& m) { return m.series; }, decoded);
    const frame_id_t index =
        is_frame ? std::get<FrameMessage>(decoded).index : kInvalidFrameId;
    std::visit([&](auto&& m) { item.message = std::move(m); }, decoded);
    // Series boundaries cost no bytes, so they always fit and are never lost.
    if (pull || !is_frame) return inbound.Push(std::move(item), bytes);
    if (!inbound.TryPush(std::move(item), bytes)) {
      if (inbound.Finished()) return false;
      {
        std::lock_guard<std::mutex> lock(state_mutex);
        ++frames_lost;
        ++errors_by_code["queue_full"];
      }
      EmitEvent(Event::Error("queue_full",
                             "frame " + std::to_string(index) +
                                 " lost: the engine is behind and the queue is full (" +
                                 std::to_string(options.queue_bytes) + " bytes)",
                             series_id, index));
    }
    return true;
  }

  // ---- engine -------------------------------------------------------------

  void RunEngine() {
    ResumeUnfinishedSeries();
    InboundItem item;
    while (inbound.Pop(&item)) {
      try {
        std::visit(
            [&](auto& m) {
              using T = std::decay_t<decltype(m)>;
              if constexpr (std::is_same_v<T, SeriesStart>) {
                OnSeriesStart(std::move(m));
              } else if constexpr (std::is_same_v<T, FrameMessage>) {
                OnFrame(m, item);
              } else if constexpr (std::is_same_v<T, SeriesEnd>) {
                OnSeriesEnd(m, item.arrival);
              } else {
                OnCommand(m);
              }
            },
            item.message);
      } catch (const std::exception& e) {
        // Nothing a message does may end the engine thread.
        CountError("internal_error");
        EmitEvent(Event::Error("internal_error", e.what()));
      }
      item = InboundItem{};  // release the payload now, not at the next Pop
      if (DrainExpired()) {
        DiscardQueuedOnStop();
        break;
      }
    }
    // Stopped: the queue is drained (or what the drain deadline left was
    // counted and reported); now the series is finished.
    if (series) EndSeries("shutdown", std::nullopt, Clock::now());
    outbound.Close();
  }

  void SetCurrentSeriesState() {
    std::lock_guard<std::mutex> lock(state_mutex);
    series_active = series != nullptr;
    current_series = series ? series->start.series.ToString() : "";
    current_frames = series ? static_cast<int>(series->wire_indices.size()) : 0;
  }

  // `resumed`: the journal of an unfinished series being resumed (else a new
  // journal is created in the series' directory).
  void BeginSeries(SeriesStart start, bool implicit, Clock::time_point arrival,
                   std::unique_ptr<JournalFrameStore> resumed = nullptr) {
    auto s = std::make_unique<Series>();
    s->start = std::move(start);
    s->implicit = implicit;
    s->engine_options = options.engine;
    if (s->start.pixel_size_x_A) s->engine_options.pixel_size_x_A = *s->start.pixel_size_x_A;
    if (s->start.pixel_size_y_A) s->engine_options.pixel_size_y_A = *s->start.pixel_size_y_A;
    s->first_arrival = arrival;
    s->last_save = arrival;
    if (!options.out.empty()) {
      s->dir = (std::filesystem::path(options.out) / s->start.series.DirectoryName()).string();
    }
    s->engine = factory(s->engine_options, s->start.shape);
    if (!s->start.channels.empty()) {
      s->engine->SetChannels(s->start.channels,
                             s->start.channels[RegisterChannelIndex(s->start)]);
    }
    s->resumed = resumed != nullptr;
    s->journal = resumed ? std::move(resumed) : CreateJournal(*s);
    ended_series.erase(s->start.series.ToString());
    series = std::move(s);
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      ++series_started;
      last_drift.clear();
      last_quality.clear();
      last_average.clear();
    }
    SetCurrentSeriesState();
    std::ostringstream shape;
    shape << series->start.shape;
    EmitEvent(Event::Info(
        "series_started",
        "series " + series->start.series.ToString() + " started, shape " + shape.str() +
            ", dtype " + PixelTypeName(series->start.dtype) +
            (series->start.channels.empty()
                 ? ""
                 : ", channels " + JoinChannels(series->start.channels) + " registered on " +
                       series->start.channels[RegisterChannelIndex(series->start)]),
        series->start.series));
  }

  void OnSeriesStart(SeriesStart start) {
    if (series && series->resumed && series->start.series == start.series &&
        series->start.shape == start.shape && series->start.dtype == start.dtype &&
        series->start.channels == start.channels) {
      // A sender re-sending its series_start after the daemon's restart: the
      // resumed series goes on.
      EmitEvent(Event::Info("duplicate_series_start",
                      "series_start of the resumed series " + start.series.ToString() +
                          " sent again; the series goes on",
                      start.series, {}));
      return;
    }
    if (series) EndSeries("series_start", std::nullopt, Clock::now());
    BeginSeries(std::move(start), false, Clock::now());
  }

  void Drop(const FrameMessage& f, const std::string& code, const std::string& message,
            const std::string& level = "error") {
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      ++frames_dropped;
      ++errors_by_code[code];
    }
    if (series && series->start.series == f.series) ++series->dropped;
    EmitEvent(Event::Make(level, code, "frame " + std::to_string(f.index) + ": " + message, f.series, f.index));
  }

  void OnFrame(const FrameMessage& f, InboundItem& item) {
    if (!series || series->start.series != f.series) {
      if (ended_series.count(f.series.ToString()) > 0) {
        Drop(f, "series_ended", "series " + f.series.ToString() +
                                    " has ended; a new series_start restarts it");
        return;
      }
      if (series) EndSeries("new_series", std::nullopt, item.arrival);
      SeriesStart start;
      start.series = f.series;
      start.shape = f.shape;
      start.dtype = f.dtype;
      start.channels = f.channels;  // registered on the first
      CountError("implicit_series_start");
      EmitEvent(Event::Warning("implicit_series_start",
                               "frame of unknown series " + f.series.ToString() +
                                   " starts it without a series_start",
                               f.series, f.index));
      BeginSeries(std::move(start), true, item.arrival);
    }
    Series& s = *series;
    if (f.shape != s.start.shape) {
      std::ostringstream message;
      message << "shape " << f.shape << " differs from the series' " << s.start.shape;
      return Drop(f, "shape_change", message.str());
    }
    if (f.dtype != s.start.dtype) {
      return Drop(f, "dtype_change", std::string("dtype ") + PixelTypeName(f.dtype) +
                                         " differs from the series' " +
                                         PixelTypeName(s.start.dtype));
    }
    if (f.channels != s.start.channels) {
      return Drop(f, "channel_change", "channels [" + JoinChannels(f.channels) +
                                           "] differ from the series' [" +
                                           JoinChannels(s.start.channels) + "]");
    }
    if (s.accepted.count(f.index) > 0) {
      // Harmless: a sender re-sending what it had no drift message for.
      ++s.duplicates;
      {
        std::lock_guard<std::mutex> lock(state_mutex);
        ++frames_duplicate;
        ++errors_by_code["duplicate_frame"];
      }
      EmitEvent(Event::Info("duplicate_frame",
                      "frame " + std::to_string(f.index) +
                          ": index already accepted; not registered again",
                      f.series, f.index));
      return;
    }
    if (s.last_index != kInvalidFrameId && f.index < s.last_index) {
      return Drop(f, "out_of_order", "arrived after frame " + std::to_string(s.last_index));
    }
    FrameHeader header;
    header.index = static_cast<frame_id_t>(s.wire_indices.size());
    header.shape = f.shape;
    if (f.timestamp_s) {
      header.timestamp_s = *f.timestamp_s;
    } else if (s.start.frame_time_s) {
      header.timestamp_s = static_cast<double>(f.index) * *s.start.frame_time_s;
    } else {
      // No clock from the sender: the daemon's arrival time stands in.
      header.timestamp_s =
          std::chrono::duration<double>(item.arrival - s.first_arrival).count();
    }
    Frame frame = ConvertToFloat(item.payload.data(), item.payload.size(), f.dtype, f.shape, header);
    item.payload = zmq::message_t();  // the raw bytes are no longer needed
    // Several detectors: every channel's frame, in the series' order.
    std::vector<Frame> channel_frames;
    if (!s.start.channels.empty()) {
      channel_frames.push_back(std::move(frame));
      for (zmq::message_t& part : item.more_payloads) {
        channel_frames.push_back(ConvertToFloat(part.data(), part.size(), f.dtype, f.shape, header));
        part = zmq::message_t();
      }
      for (std::size_t c = 0; c < channel_frames.size(); ++c) {
        if (const std::int64_t bad = CountNonFinite(channel_frames[c]); bad > 0) {
          return Drop(f, "non_finite", std::to_string(bad) + " NaN/Inf pixels in channel " +
                                           s.start.channels[c] + "; frame refused");
        }
      }
      frame = channel_frames[RegisterChannelIndex(s.start)].Clone();
    }
    if (const std::int64_t bad = CountNonFinite(frame); bad > 0) {
      return Drop(f, "non_finite", std::to_string(bad) + " NaN/Inf pixels; frame refused");
    }
    const auto [min_it, max_it] = std::minmax_element(frame.pixels().begin(), frame.pixels().end());
    if (*min_it == *max_it) {
      return Drop(f, "constant_frame", "every pixel is " + std::to_string(*min_it) +
                                           "; nothing to register");
    }
    AcceptFrame(f, std::move(frame), std::move(channel_frames), item.arrival,
                /*replaying=*/false);
  }

  // Appends a validated frame to the journal (it is accepted once there),
  // registers it and publishes the results. `replaying`: the frame comes from
  // the journal of a resumed series (not appended again, results published
  // once at the end of the replay). False when the frame was refused.
  // `channel_frames`: every channel's frame of a several-detector series, in
  // the series' order (empty for one channel; `frame` is the registered one).
  bool AcceptFrame(const FrameMessage& f, Frame frame, std::vector<Frame> channel_frames,
                   Clock::time_point arrival, bool replaying) {
    Series& s = *series;
    const frame_id_t expected_next = s.last_index == kInvalidFrameId ? 0 : s.last_index + 1;
    if (f.index > expected_next) ReportGap(f, expected_next);

    if (s.journal && !replaying) {
      JournalFrameEntry entry;
      entry.index = frame.header().index;
      entry.wire_index = f.index;
      entry.timestamp_s = frame.header().timestamp_s;
      entry.shape = frame.shape();
      try {
        if (channel_frames.empty()) {
          s.journal->Append(entry, frame.view());
        } else {
          // One record per channel; a resume replays an index only when all
          // of its channels are there.
          for (std::size_t c = 0; c < channel_frames.size(); ++c) {
            entry.channel = s.start.channels[c];
            s.journal->Append(entry, channel_frames[c].view());
          }
        }
      } catch (const std::exception& e) {
        // Not durable, so not accepted: the sender sees no drift message for
        // it and may send it again.
        Drop(f, "journal_error", std::string("could not be journaled: ") + e.what());
        return false;
      }
    }
    std::optional<Frame> kept;
    if (options.keep_frames) kept = frame.Clone();
    const Clock::time_point engine_start = Clock::now();
    try {
      if (channel_frames.empty()) {
        s.result = s.engine->AddFrame(std::move(frame));
      } else {
        s.result = s.engine->AddChannelFrames(std::move(channel_frames));
      }
      last_engine_ms_ = MsSince(engine_start);
      last_queue_ms_ =
          std::chrono::duration<double, std::milli>(engine_start - arrival).count();
    } catch (const std::exception& e) {
      Drop(f, "engine_error", std::string("the engine refused it: ") + e.what());
      return false;
    }
    s.accepted.insert(f.index);
    s.wire_indices.push_back(f.index);
    s.scan_offsets_px.push_back(f.scan_offset_px.value_or(Shift{}));
    s.last_index = f.index;
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      ++frames_accepted;
      current_frames = static_cast<int>(s.wire_indices.size());
    }
    if (kept) {
      try {
        s.engine->KeepFrame(s.dir, *kept);
      } catch (const std::exception& e) {
        CountError("output_error");
        EmitEvent(Event::Error("output_error", std::string("frames.tif: ") + e.what(), f.series,
                               f.index));
      }
    }
    if (replaying) return true;
    const bool last = s.start.expected_frames && f.index + 1 >= *s.start.expected_frames;
    PublishResults(arrival, /*final=*/false, /*force_average=*/last);
    MaybeSave();
    return true;
  }

  // ---- durability ---------------------------------------------------------

  // The journal of a new series; null (reported) when it cannot be created.
  std::unique_ptr<JournalFrameStore> CreateJournal(const Series& s) {
    if (s.dir.empty()) return nullptr;
    JournalSeries record;
    record.series = s.start.series.is_int ? nlohmann::json(s.start.series.number)
                                          : nlohmann::json(s.start.series.text);
    record.shape = s.start.shape;
    record.dtype = s.start.dtype;
    record.pixel_size_x_A = s.start.pixel_size_x_A;
    record.pixel_size_y_A = s.start.pixel_size_y_A;
    record.frame_time_s = s.start.frame_time_s;
    record.expected_frames = s.start.expected_frames;
    record.meta = s.start.meta;
    record.channels = s.start.channels;
    record.register_channel = s.start.register_channel;
    record.implicit = s.implicit;
    try {
      std::filesystem::create_directories(s.dir);
      return JournalFrameStore::Create(
          (std::filesystem::path(s.dir) / kJournalName).string(), record, JournalOptions());
    } catch (const std::exception& e) {
      CountError("journal_error");
      EmitEvent(Event::Error("journal_error",
                      std::string("no journal: frames are registered but not durable: ") + e.what(),
                      s.start.series, {}));
      return nullptr;
    }
  }

  JournalFrameStore::Options JournalOptions() const {
    JournalFrameStore::Options o;
    o.journal.sync = options.journal_sync;
    o.cache_bytes = 0;  // the daemon reads frames back only on resume
    return o;
  }

  // Closes a series' journal with its finish record, so that a restart does
  // not resume it.
  void FinishJournal(Series& s, const std::string& reason) {
    if (!s.journal) return;
    try {
      s.journal->MarkFinished(reason);
    } catch (const std::exception& e) {
      CountError("journal_error");
      EmitEvent(Event::Error("journal_error",
                      std::string("finish record not written (a restart resumes the series): ") +
                          e.what(),
                      s.start.series, {}));
    }
    s.journal.reset();
  }

  // On start, with --out: finds the newest journal without a finish record
  // and resumes its series (replays the frames into a new engine, publishes
  // a `resumed` event). Other unfinished journals are reported and left.
  void ResumeUnfinishedSeries() {
    if (options.out.empty()) return;
    namespace fs = std::filesystem;
    std::vector<std::pair<fs::file_time_type, fs::path>> unfinished;
    std::error_code ec;
    for (const fs::directory_entry& dir : fs::directory_iterator(options.out, ec)) {
      const fs::path journal = dir.path() / kJournalName;
      if (!dir.is_directory(ec) || !fs::is_regular_file(journal, ec)) continue;
      try {
        if (FrameJournalFinished(journal.string())) continue;
      } catch (const std::exception&) {
        // Unreadable: the scan below reports it.
      }
      unfinished.emplace_back(fs::last_write_time(journal, ec), journal);
    }
    if (unfinished.empty()) return;
    std::sort(unfinished.begin(), unfinished.end());
    for (std::size_t k = 0; k + 1 < unfinished.size(); ++k) {
      EmitEvent(Event::Warning("unfinished_series",
                      unfinished[k].second.string() +
                          " holds an unfinished series; only the newest is resumed",
                      {}, {}));
    }
    const std::string path = unfinished.back().second.string();
    try {
      ResumeFrom(path);
    } catch (const std::exception& e) {
      series.reset();
      SetCurrentSeriesState();
      CountError("resume_error");
      EmitEvent(Event::Error("resume_error", "cannot resume " + path + ": " + e.what(), {}, {}));
    }
  }

  void ResumeFrom(const std::string& path) {
    std::unique_ptr<JournalFrameStore> journal = JournalFrameStore::Open(path, JournalOptions());
    const JournalSeries& record = journal->series();
    SeriesStart start;
    start.series = record.series.is_string() ? SeriesId::Str(record.series.get<std::string>())
                                             : SeriesId::Int(record.series.get<std::int64_t>());
    start.shape = record.shape;
    start.dtype = record.dtype;
    start.pixel_size_x_A = record.pixel_size_x_A;
    start.pixel_size_y_A = record.pixel_size_y_A;
    start.frame_time_s = record.frame_time_s;
    start.expected_frames = record.expected_frames;
    start.meta = record.meta;
    start.channels = record.channels;
    start.register_channel = record.register_channel;
    const JournalScan scan = journal->recovered();  // a copy: `journal` moves
    const Clock::time_point now = Clock::now();
    BeginSeries(std::move(start), record.implicit, now, std::move(journal));
    Series& s = *series;
    std::int64_t replayed = 0;
    // The records of each position, by channel (one "" record for a single
    // channel), in file order.
    std::map<frame_id_t, std::map<std::string, const JournalFrameEntry*>> by_index;
    for (const JournalFrameEntry& entry : scan.frames) {
      by_index[entry.index].emplace(entry.channel, &entry);
    }
    const std::vector<std::string> channels =
        s.start.channels.empty() ? std::vector<std::string>{""} : s.start.channels;
    for (const auto& [index, records] : by_index) {
      // Positions must follow on; anything else (a frame whose channels were
      // not all written, a journal not written by this daemon) ends the replay.
      if (index != static_cast<frame_id_t>(s.wire_indices.size())) break;
      std::vector<Frame> channel_frames;
      for (const std::string& channel : channels) {
        auto it = records.find(channel);
        if (it == records.end()) break;
        channel_frames.push_back(ReadJournalFrameAt(path, it->second->offset).ToFrame());
      }
      if (channel_frames.size() != channels.size()) break;
      const JournalFrameEntry& entry = *records.begin()->second;
      if (s.accepted.count(entry.wire_index) > 0) break;
      FrameMessage f;
      f.series = s.start.series;
      f.index = entry.wire_index;
      f.shape = entry.shape;
      f.dtype = s.start.dtype;
      f.channels = s.start.channels;
      Frame frame = channel_frames[s.start.channels.empty() ? 0 : RegisterChannelIndex(s.start)]
                        .Clone();
      if (s.start.channels.empty()) channel_frames.clear();
      if (!AcceptFrame(f, std::move(frame), std::move(channel_frames), now, /*replaying=*/true)) {
        break;
      }
      ++replayed;
    }
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      frames_recovered += replayed;
      journal_corruptions += static_cast<std::int64_t>(scan.corruptions.size());
    }
    if (!s.wire_indices.empty()) PublishResults(now, /*final=*/false, /*force_average=*/true);
    std::string message = "series " + s.start.series.ToString() + " resumed from " + path + ": " +
                          std::to_string(replayed) + " frame(s) recovered";
    if (!scan.corruptions.empty()) {
      message += "; " + std::to_string(scan.corruptions.size()) +
                 " corrupt stretch(es) dropped (" + std::to_string(scan.DroppedBytes()) +
                 " bytes): " + scan.corruptions.front().reason;
    }
    const Event event{scan.corruptions.empty() ? "info" : "warning", "resumed", message,
                      s.start.series,
                      s.last_index == kInvalidFrameId ? std::nullopt
                                                      : std::optional<frame_id_t>(s.last_index),
                      {}, 0};
    Publish(EncodeEvent(
        event, {{"recovered_frames", replayed},
                {"dropped_records", static_cast<std::int64_t>(scan.corruptions.size())},
                {"dropped_bytes", static_cast<std::int64_t>(scan.DroppedBytes())}}));
    Log(event.level, message);  // always: once per start, and it matters
  }

  // Reports frames [expected_next, f.index) as missing; `frame` is f.index
  // (at a series end, the sender's frame count).
  void ReportGap(const FrameMessage& f, frame_id_t expected_next) {
    Event event = Event::FrameGap(f.series, f.index, f.index - expected_next);
    for (frame_id_t i = expected_next; i < f.index && event.missing.size() < kMaxListedMissing; ++i) {
      event.missing.push_back(i);
    }
    event.message = std::to_string(event.missing_count) + " frame(s) missing: " +
                    std::to_string(expected_next) + " to " + std::to_string(f.index - 1);
    series->missing += event.missing_count;
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      frames_missing += event.missing_count;
      ++errors_by_code["frame_gap"];
    }
    EmitEvent(std::move(event));
  }

  // Publishes drift (and quality; average when due) for the current series.
  void PublishResults(Clock::time_point arrival, bool final, bool force_average) {
    Series& s = *series;
    const EngineQuality& quality = s.result.quality;
    OutItem item;
    item.is_drift = true;
    item.arrival = arrival;
    DriftUpdate& d = item.drift;
    d.series = s.start.series;
    d.frame = s.last_index;
    d.frame_indices = s.wire_indices;
    d.final = final;
    d.queue_ms = final ? 0 : last_queue_ms_;
    d.engine_ms = final ? 0 : last_engine_ms_;
    const std::vector<FrameState>& states = s.result.frames;
    d.frames = states;
    d.drift_rate_A_per_s = quality.drift_rate_A_per_s;
    d.drift_rate_px_per_s = quality.drift_rate_px_per_s;
    d.prediction = PredictNext(s, states);
    const std::size_t bytes = 64 * states.size() + kItemOverheadBytes;
    outbound.Push(std::move(item), bytes);
    const int n_frames = static_cast<int>(s.wire_indices.size());
    const bool force = final || force_average;
    UpdateImageQuality(force);
    Publish(EncodeQuality(s.start.series, quality,
                          s.image_quality ? &*s.image_quality : nullptr, PixelSizeYx(),
                          &s.quality_history));
    AnnounceGoodAndStop();
    const Clock::time_point now = Clock::now();
    const bool due =
        !s.have_average || std::chrono::duration<double>(now - s.last_average).count() >=
                               options.average_interval_s;
    if (force || due) {
      PublishAverages(n_frames);
      // The raw frame and the matrices share the average's timer: the
      // viewer shows them side by side, and each costs a copy per message.
      const Frame latest = s.engine->LatestFrame();
      if (!latest.pixels().empty()) {
        Publish(EncodeLatestFrame(s.start.series, n_frames, s.last_index, latest));
      }
      const RegistrationResult with_matrix = s.engine->Snapshot(ResultRequest{false, true});
      if (with_matrix.shift_matrix && with_matrix.shift_matrix->k > 0) {
        Publish(EncodeMatrices(s.start.series, n_frames, *with_matrix.shift_matrix));
      }
      s.last_average = now;
      s.have_average = true;
    }
  }

  // One `average` per channel: the other channels first, the registration
  // channel last (its header is the one `snapshot` returns).
  void PublishAverages(int n_frames) {
    const Series& s = *series;
    if (s.start.channels.empty()) {
      Publish(EncodeAverage(s.start.series, n_frames, s.engine->Average()));
      return;
    }
    const std::string& registered = s.start.channels[RegisterChannelIndex(s.start)];
    for (const std::string& channel : s.start.channels) {
      if (channel == registered) continue;
      Publish(EncodeAverage(s.start.series, n_frames, s.engine->ChannelAverage(channel), channel,
                            s.start.channels));
    }
    Publish(EncodeAverage(s.start.series, n_frames, s.engine->Average(), registered,
                          s.start.channels));
  }

  // The next frame's shift for scan feedback, over the drift window.
  static DriftPrediction PredictNext(const Series& s, const std::vector<FrameState>& states) {
    DriftTrace trace;
    trace.frame_indices = s.wire_indices;
    trace.scan_offsets_px = s.scan_offsets_px;
    for (const FrameState& state : states) {
      trace.shifts_px.push_back(state.shift);
      trace.timestamps_s.push_back(state.timestamp_s);
      trace.residual_px.push_back(state.residual_px);
      trace.excluded.push_back(state.flagged);
    }
    if (trace.shifts_px.size() != trace.frame_indices.size()) return DriftPrediction{};
    DriftPredictionOptions options;
    options.window_frames = std::max(2, s.engine_options.drift_window_frames);
    return PredictNextShift(trace, options);
  }

  // The series' effective pixel size [y, x], Å; nullopt when unknown.
  std::optional<std::array<double, 2>> PixelSizeYx() const {
    const EngineOptions& e = series->engine_options;
    if (!(e.pixel_size_x_A > 0) || !(e.pixel_size_y_A > 0)) return std::nullopt;
    return std::array<double, 2>{e.pixel_size_y_A, e.pixel_size_x_A};
  }

  // Recomputes the image quality when --quality-interval-s has passed since
  // the last computation (or when forced: the last frame of a series). A
  // failure is an event; the previous figures stay.
  void UpdateImageQuality(bool force) {
    Series& s = *series;
    const Clock::time_point now = Clock::now();
    const bool due = !s.image_quality ||
                     std::chrono::duration<double>(now - s.last_image_quality).count() >=
                         options.quality_interval_s;
    if (!force && !due) return;
    try {
      s.image_quality = s.engine->ImageQuality();
      const ImageQualityReport& r = *s.image_quality;
      if (s.quality_history.empty() ||
          s.quality_history.back()["n_frames"].get<int>() != r.num_frames) {
        s.quality_history.push_back(QualityHistoryEntryJson(r));
      }
    } catch (const std::exception& e) {
      CountError("quality_error");
      EmitEvent(Event::Error("quality_error", std::string("image quality: ") + e.what(),
                             s.start.series, s.last_index));
    }
    s.last_image_quality = now;
  }

  // Publishes the `good` and `stop` events the first time each holds in the
  // series. On the engine thread, so they wait for room rather than drop.
  void AnnounceGoodAndStop() {
    Series& s = *series;
    if (!s.image_quality) return;
    const ImageQualityReport& r = *s.image_quality;
    if (r.good && !s.good_announced) {
      s.good_announced = true;
      Publish(EncodeEvent(Event::Info("good", r.reason, s.start.series, s.last_index)));
    }
    if (r.stop && !s.stop_announced) {
      s.stop_announced = true;
      Publish(EncodeEvent(Event::Info("stop", r.reason, s.start.series, s.last_index)));
    }
  }

  // The daemon's part of report.json. Its `image_quality` section comes from
  // the back end (WriteRegistrationOutputs computes it fresh, FRC curves
  // included), as for `livealign register`.
  nlohmann::json SeriesExtra(const std::string& reason,
                             std::optional<std::int64_t> frames_sent) const {
    const Series& s = *series;
    return nlohmann::json{
        {"series", s.start.series.is_int ? nlohmann::json(s.start.series.number)
                                         : nlohmann::json(s.start.series.text)},
        {"meta", s.start.meta},
        {"wire_frame_indices", s.wire_indices},
        {"quality_history", s.quality_history},
        {"live",
         {{"implicit_start", s.implicit},
          {"frames_dropped", s.dropped},
          {"frames_missing", s.missing},
          {"frames_duplicate", s.duplicates},
          {"resumed", s.resumed},
          {"expected_frames", s.start.expected_frames ? nlohmann::json(*s.start.expected_frames)
                                                      : nlohmann::json()},
          {"frames_sent", frames_sent ? nlohmann::json(*frames_sent) : nlohmann::json()},
          {"end_reason", reason},
          {"daemon_options", options.ToJson()}}}};
  }

  // Writes the outputs of the running series; returns the files (empty
  // without --out) or throws.
  std::vector<std::string> WriteOutputs(const std::string& reason,
                                        std::optional<std::int64_t> frames_sent) {
    if (series->dir.empty() || series->wire_indices.empty()) return {};
    // The image quality just published describes this state when it counts
    // the same frames (always so at a series end, where it is recomputed
    // after Finish); otherwise the writer computes it.
    const Series& s = *series;
    const bool current = s.image_quality && s.image_quality->num_frames ==
                                                s.result.num_frames();
    return s.engine->WriteOutputs(s.dir, SeriesExtra(reason, frames_sent),
                                  current ? &*s.image_quality : nullptr);
  }

  void MaybeSave() {
    if (options.save_interval_s <= 0 || series->dir.empty()) return;
    const Clock::time_point now = Clock::now();
    if (std::chrono::duration<double>(now - series->last_save).count() < options.save_interval_s ||
        inbound.Size() > 0) {
      return;
    }
    series->last_save = now;
    try {
      WriteOutputs("periodic", std::nullopt);
    } catch (const std::exception& e) {
      CountError("output_error");
      EmitEvent(Event::Error("output_error", e.what(), series->start.series));
    }
  }

  void EndSeries(const std::string& reason, std::optional<std::int64_t> frames_sent,
                 Clock::time_point arrival) {
    Series& s = *series;
    SeriesEndSummary summary;
    summary.series = s.start.series;
    summary.n_frames = static_cast<int>(s.wire_indices.size());
    summary.frames_sent = frames_sent;
    summary.reason = reason;
    summary.dir = s.dir;
    if (!s.wire_indices.empty()) {
      try {
        s.result = s.engine->Finish();
        PublishResults(arrival, /*final=*/true, /*force_average=*/true);
      } catch (const std::exception& e) {
        CountError("engine_error");
        EmitEvent(Event::Error("engine_error", std::string("finish: ") + e.what(),
                               s.start.series));
      }
      try {
        summary.files = WriteOutputs(reason, frames_sent);
      } catch (const std::exception& e) {
        summary.error = e.what();
        CountError("output_error");
        EmitEvent(Event::Error("output_error", e.what(), s.start.series));
      }
    }
    // Frames lost after the last one received are only known from the count.
    const std::optional<std::int64_t> total = frames_sent ? frames_sent : s.start.expected_frames;
    const frame_id_t next = s.last_index == kInvalidFrameId ? 0 : s.last_index + 1;
    if (total && *total > next) {
      FrameMessage tail;
      tail.series = s.start.series;
      tail.index = *total;
      ReportGap(tail, next);
    }
    if (frames_sent && *frames_sent != static_cast<std::int64_t>(s.wire_indices.size())) {
      EmitEvent(Event::Warning("frames_short",
                               "sender reports " + std::to_string(*frames_sent) + " frames, " +
                                   std::to_string(s.wire_indices.size()) + " registered",
                               s.start.series));
    }
    FinishJournal(s, reason);
    ended_series.insert(s.start.series.ToString());
    series.reset();
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      ++series_completed;
    }
    SetCurrentSeriesState();
    // One line per completed series in the daemon's log.
    if (options.log_events) {
      Log("info", "series " + summary.series.ToString() + " ended (" + reason + "): " +
                      std::to_string(summary.n_frames) + " frames" +
                      (summary.files.empty() ? "" : ", outputs in " + summary.dir));
    }
    // Last, so that `status` already shows the series as ended to anyone who
    // reacts to this message.
    Publish(EncodeSeriesEnd(summary));
  }

  void OnSeriesEnd(const SeriesEnd& end, Clock::time_point arrival) {
    if (!series || series->start.series != end.series) {
      CountError("unknown_series");
      EmitEvent(Event::Warning("unknown_series",
                               "series_end for series " + end.series.ToString() +
                                   ", which is not running",
                               end.series));
      return;
    }
    EndSeries("series_end", end.frames, arrival);
  }

  void OnCommand(ControlCommand& command) {
    nlohmann::json reply{{"ok", true}, {"error", ""}};
    if (command.cmd == "save") {
      if (!series) {
        reply = {{"ok", false}, {"error", "no series is running"}};
      } else {
        try {
          reply["files"] = WriteOutputs("save", std::nullopt);
          reply["series"] = series->start.series.ToString();
        } catch (const std::exception& e) {
          reply = {{"ok", false}, {"error", e.what()}};
        }
      }
    } else if (command.cmd == "reset") {
      // Abandons the running series without writing it; counters stay
      // (they describe the daemon's whole life).
      reply["discarded_series"] = series ? nlohmann::json(series->start.series.ToString())
                                         : nlohmann::json();
      reply["discarded_frames"] = series ? series->wire_indices.size() : 0;
      if (series) {
        FinishJournal(*series, "reset");
        EmitEvent(Event::Warning("series_reset", "series abandoned by a reset request",
                                 series->start.series));
      }
      series.reset();
      ended_series.clear();
      // Always announced, so viewers clear their state (and a subscriber can
      // use a reset to learn that its subscription is live).
      EmitEvent(Event::Info("reset", "daemon reset"));
      {
        std::lock_guard<std::mutex> lock(state_mutex);
        last_drift.clear();
        last_quality.clear();
        last_average.clear();
      }
      SetCurrentSeriesState();
    }
    command.reply->set_value(reply);
  }

  // ---- publisher ----------------------------------------------------------

  void RunPublisher() {
    OutItem item;
    while (outbound.Pop(&item)) {
      if (item.is_drift) {
        item.drift.latency_ms = MsSince(item.arrival);
        item.message = EncodeDrift(item.drift);
      }
      const OutMessage& m = item.message;
      try {
        const bool has_data = !m.data.empty();
        publish_socket.send(zmq::buffer(m.topic), zmq::send_flags::sndmore);
        publish_socket.send(zmq::buffer(m.header),
                            has_data ? zmq::send_flags::sndmore : zmq::send_flags::none);
        if (has_data) publish_socket.send(zmq::buffer(m.data), zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        Log("error", std::string("publish failed: ") + e.what());
      }
      for (ResultSink* sink : sinks) {
        try {
          sink->Publish(m);
        } catch (const std::exception& e) {
          Log("error", std::string("result sink failed: ") + e.what());
        }
      }
      std::lock_guard<std::mutex> lock(state_mutex);
      ++messages_published;
      if (m.topic == "drift") {
        last_drift = m.header;
        last_latency_ms = item.drift.latency_ms;
      } else if (m.topic == "quality") {
        last_quality = m.header;
      } else if (m.topic == "average") {
        last_average = m.header;
      }
    }
  }

  // ---- control ------------------------------------------------------------

  void RunControl() {
    while (!stop_requested->load()) {
      zmq::pollitem_t item{control_socket.handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(kPollMs));
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) return;
        continue;
      }
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> parts;
      try {
        if (!zmq::recv_multipart(control_socket, std::back_inserter(parts),
                                 zmq::recv_flags::dontwait)) {
          continue;
        }
      } catch (const zmq::error_t&) {
        continue;
      }
      std::string reply;
      bool shutdown = false;
      try {
        const ControlRequest request =
            DecodeControl(std::string_view(parts[0].data<char>(), parts[0].size()));
        const std::string& cmd = request.cmd;
        const std::string refusal = ControlRefusal(request);
        if (!refusal.empty()) {
          CountError("unauthorized");
          reply = EncodeReply(false, refusal, nlohmann::json{{"code", "unauthorized"}});
        } else {
          reply = Answer(cmd);
          shutdown = cmd == "shutdown";
        }
      } catch (const DecodeError& e) {
        CountError(e.code());
        reply = EncodeReply(false, e.what(), nlohmann::json{{"code", e.code()}});
      }
      try {
        control_socket.send(zmq::buffer(reply), zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        Log("error", std::string("control reply failed: ") + e.what());
      }
      if (shutdown) RequestStop();
    }
  }

  // Why a state-changing command is refused ("" when it may run): see
  // DaemonOptions::control_token_required. The comparison takes the same
  // time wherever the tokens differ.
  std::string ControlRefusal(const ControlRequest& request) const {
    if (!options.control_token_required) return "";
    if (request.cmd == "status" || request.cmd == "snapshot") return "";
    if (options.control_token.empty()) {
      return request.cmd + " refused: the daemon accepts remote connections and was started "
                           "without --control-token-file";
    }
    const std::string& want = options.control_token;
    const std::string& got = request.token;
    unsigned diff = got.size() == want.size() ? 0u : 1u;
    for (std::size_t i = 0; i < want.size(); ++i) {
      diff |= static_cast<unsigned char>(want[i]) ^
              static_cast<unsigned char>(i < got.size() ? got[i] : 0);
    }
    if (diff == 0) return "";
    return request.cmd + (got.empty() ? " refused: the request has no token"
                                      : " refused: wrong token");
  }

  std::string Answer(const std::string& cmd) {
    if (cmd == "status") return EncodeReply(true, "", StatusJson());
    if (cmd == "snapshot") {
      std::lock_guard<std::mutex> lock(state_mutex);
      return EncodeSnapshotReply(last_drift, last_quality, last_average);
    }
    if (cmd == "shutdown") return EncodeReply(true, "", nlohmann::json{{"stopping", true}});
    // save / reset run on the engine thread, after the frames already queued.
    ControlCommand command{cmd, std::make_shared<std::promise<nlohmann::json>>()};
    std::future<nlohmann::json> future = command.reply->get_future();
    InboundItem item;
    item.message = std::move(command);
    if (!inbound.TryPush(std::move(item), 0)) return EncodeReply(false, "daemon is stopping", {});
    try {
      if (future.wait_for(std::chrono::minutes(5)) != std::future_status::ready) {
        return EncodeReply(false, cmd + " timed out", {});
      }
      nlohmann::json result = future.get();
      const bool ok = result.value("ok", false);
      const std::string error = result.value("error", "");
      return EncodeReply(ok, error, result);
    } catch (const std::future_error&) {
      return EncodeReply(false, "daemon is stopping", {});
    }
  }

  nlohmann::json StatusJson() const {
    std::lock_guard<std::mutex> lock(state_mutex);
    nlohmann::json errors = nlohmann::json::object();
    for (const auto& [code, count] : errors_by_code) errors[code] = count;
    return nlohmann::json{
        {"state", stop_requested->load() ? "stopping" : (series_active ? "running" : "idle")},
        {"series", series_active ? nlohmann::json(current_series) : nlohmann::json()},
        {"n_frames", current_frames},
        {"messages_received", messages_received},
        {"bad_messages", bad_messages},
        {"frames_received", frames_received},
        {"frames_accepted", frames_accepted},
        {"frames_dropped", frames_dropped},
        {"frames_lost", frames_lost},
        {"frames_missing", frames_missing},
        {"frames_discarded_on_stop", frames_discarded_on_stop},
        {"frames_duplicate", frames_duplicate},
        {"frames_recovered", frames_recovered},
        {"journal_corruptions", journal_corruptions},
        {"events_dropped", events_dropped},
        {"series_started", series_started},
        {"series_completed", series_completed},
        {"messages_published", messages_published},
        {"errors_by_code", errors},
        {"queue_bytes", inbound.Bytes()},
        {"queue_items", inbound.Size()},
        {"queue_high_water_bytes", inbound.HighWaterBytes()},
        {"queue_capacity_bytes", inbound.max_bytes()},
        {"last_latency_ms", std::isfinite(last_latency_ms) ? nlohmann::json(last_latency_ms)
                                                           : nlohmann::json()},
        {"uptime_s", std::chrono::duration<double>(Clock::now() - start_time).count()},
        {"source_pattern", options.source_pattern},
        {"out", options.out}};
  }

  void RequestStop() {
    // The receiver stops taking frames (after draining the socket) and closes
    // the queue; the engine registers what is queued within the drain
    // deadline (RunEngine), then finishes the series.
    if (!draining.load()) {
      stop_time_ticks.store(Clock::now().time_since_epoch().count());
      draining.store(true);
    }
    stop_requested->store(true);
    if (!started) inbound.Stop();
  }

  // The drain deadline has passed: what is still queued is not registered.
  // Never silent: counted and reported.
  void DiscardQueuedOnStop() {
    const std::int64_t left = static_cast<std::int64_t>(inbound.Size());
    inbound.Stop();
    if (left == 0) return;
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      frames_discarded_on_stop += left;
      ++errors_by_code["drain_timeout"];
    }
    EmitEvent(Event::Error("drain_timeout",
                    std::to_string(left) + " queued message(s) not registered: the drain took "
                    "longer than --drain-timeout-s (" + std::to_string(options.drain_timeout_s) +
                    " s)",
                    series ? std::optional<SeriesId>(series->start.series) : std::nullopt, {}));
  }
};

Daemon::Daemon(const DaemonOptions& options, LiveEngineFactory factory)
    : impl_(std::make_unique<Impl>(options, std::move(factory), &stop_requested_)) {}

Daemon::~Daemon() {
  Stop();
  Wait();
}

void Daemon::AddSink(ResultSink* sink) {
  if (impl_->started) throw std::logic_error("Daemon::AddSink after Start");
  impl_->sinks.push_back(sink);
}

void Daemon::Start() {
  if (impl_->started) throw std::logic_error("Daemon::Start called twice");
  std::string error;
  if (!impl_->options.Check(&error)) throw std::invalid_argument(error);
  const DaemonOptions& o = impl_->options;
  Impl& d = *impl_;
  auto last_endpoint = [](zmq::socket_t& s) { return s.get(zmq::sockopt::last_endpoint); };

  d.source_socket = zmq::socket_t(d.context, o.source_pattern == "pull" ? zmq::socket_type::pull
                                                                         : zmq::socket_type::sub);
  // A few frames of ZMQ buffering at most: beyond that, PULL pushes back on
  // the sender and SUB drops (and the gap is reported), so memory is bounded
  // by queue_bytes plus these.
  d.source_socket.set(zmq::sockopt::rcvhwm, 8);
  d.source_socket.set(zmq::sockopt::linger, 0);
  if (o.source_pattern == "sub") d.source_socket.set(zmq::sockopt::subscribe, "");
  if (o.source_bind) {
    d.source_socket.bind(o.source);
    source_endpoint_ = last_endpoint(d.source_socket);
  } else {
    d.source_socket.connect(o.source);
    source_endpoint_ = o.source;
  }
  d.publish_socket = zmq::socket_t(d.context, zmq::socket_type::pub);
  // Pending results get a moment to leave when the daemon ends.
  d.publish_socket.set(zmq::sockopt::linger, 2000);
  d.publish_socket.set(zmq::sockopt::sndhwm, 10000);
  d.publish_socket.bind(o.publish);
  publish_endpoint_ = last_endpoint(d.publish_socket);
  d.control_socket = zmq::socket_t(d.context, zmq::socket_type::rep);
  d.control_socket.set(zmq::sockopt::linger, 0);
  d.control_socket.bind(o.control);
  control_endpoint_ = last_endpoint(d.control_socket);
  if (!o.out.empty()) std::filesystem::create_directories(o.out);

  d.started = true;
  // Sockets migrate to their threads here; thread creation is the full memory
  // barrier ZeroMQ asks for.
  d.publisher_thread = std::thread([&d] { d.RunPublisher(); });
  d.engine_thread = std::thread([&d] { d.RunEngine(); });
  d.receiver_thread = std::thread([&d] { d.RunReceiver(); });
  d.control_thread = std::thread([&d] { d.RunControl(); });
}

void Daemon::Stop() { impl_->RequestStop(); }

void Daemon::Wait() {
  Impl& d = *impl_;
  if (!d.started) return;
  // The control thread only ends on a stop; waiting for it first means Wait()
  // also returns after a `shutdown` request.
  if (d.control_thread.joinable()) d.control_thread.join();
  if (d.receiver_thread.joinable()) d.receiver_thread.join();
  if (d.engine_thread.joinable()) d.engine_thread.join();
  if (d.publisher_thread.joinable()) d.publisher_thread.join();
}

nlohmann::json Daemon::Status() const { return impl_->StatusJson(); }

}  // namespace livealign
