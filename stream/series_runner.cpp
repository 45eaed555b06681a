#include "stream/series_runner.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <variant>

#include "adapters/frame_journal.hpp"
#include "adapters/journal_frame_store.hpp"
#include "adapters/result_json.hpp"
#include "core/timestamp_check.hpp"
#include "stream/codec.hpp"

namespace livealign {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Missing indices listed in one frame_gap event (the count is always exact).
constexpr std::size_t kMaxListedMissing = 1000;
// The journal of each series, in its output directory.
constexpr const char* kJournalName = "frames.journal";

// "HAADF, ABF" (or "" for one unnamed channel), for messages.
std::string JoinChannels(const std::vector<std::string>& channels) {
  std::string joined;
  for (const std::string& c : channels) joined += (joined.empty() ? "" : ", ") + c;
  return joined;
}

}  // namespace

struct SeriesRunner::Impl {
  Impl(const DaemonOptions& o, LiveEngineFactory f, InboundQueue* in, ResultPublisher* p,
       DaemonCounters* c, const StopSignal* s, QueueWaitEstimate* w)
      : options_(o),
        factory_(std::move(f)),
        inbound_(in),
        publisher_(p),
        counters_(c),
        stop_(s),
        queue_wait_(w) {}

  const DaemonOptions& options_;
  const LiveEngineFactory factory_;
  InboundQueue* const inbound_;
  ResultPublisher* const publisher_;
  DaemonCounters* const counters_;
  const StopSignal* const stop_;
  QueueWaitEstimate* const queue_wait_;  // may be null; this thread writes it

  // Guards `current`: written by the series thread, read for `status`.
  mutable std::mutex current_mutex;
  CurrentSeries current;

  void CountError(const std::string& code) { counters_->CountError(code); }

  // ---- series-thread state (the series thread only; no lock) --------------
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
    std::shared_ptr<JournalFrameStore> journal;  // shared with the engine (its frame store)
    bool resumed = false;  // continued from a journal after a restart
    std::int64_t duplicates = 0;
    // The sender's clock, judged frame by frame (core/timestamp_check.hpp).
    TimestampCheck time_check;
  };
  std::unique_ptr<Series> series_;
  std::set<std::string> ended_series_;  // SeriesId::ToString of finished series
  double last_queue_ms_ = 0;   // of the latest frame: arrival to AddFrame
  double last_engine_ms_ = 0;  // of the latest frame: AddFrame itself

  // ---- the series thread ---------------------------------------------------

  void Run() {
    ResumeUnfinishedSeries();
    InboundItem item;
    for (;;) {
      // One consumer: a queue not empty now means this Pop does not wait, so
      // the interval since the previous pop was all work (stream/queue_wait.hpp).
      const bool queue_was_empty = inbound_->Size() == 0;
      if (!inbound_->Pop(&item)) break;
      if (queue_wait_ != nullptr) queue_wait_->RecordPop(Clock::now(), queue_was_empty);
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
        // Nothing a message does may end the series thread.
        CountError("internal_error");
        publisher_->EmitEvent(Event::Error("internal_error", e.what()));
      }
      item = InboundItem{};  // release the payload now, not at the next Pop
      if (stop_->DrainExpired()) {
        DiscardQueuedOnStop();
        break;
      }
    }
    // Stopped: the queue is drained (or what the drain deadline left was
    // counted and reported); now the series is finished.
    if (series_) EndSeries("shutdown", std::nullopt, Clock::now());
    publisher_->Close();
  }

  void SetCurrent() {
    std::lock_guard<std::mutex> lock(current_mutex);
    current.active = series_ != nullptr;
    current.series = series_ ? series_->start.series.ToString() : "";
    current.n_frames = series_ ? static_cast<int>(series_->wire_indices.size()) : 0;
  }

  // `resumed`: the journal of an unfinished series being resumed (else a new
  // journal is created in the series' directory).
  void BeginSeries(SeriesStart start, bool implicit, Clock::time_point arrival,
                   std::unique_ptr<JournalFrameStore> resumed = nullptr) {
    auto s = std::make_unique<Series>();
    s->start = std::move(start);
    s->implicit = implicit;
    s->engine_options = options_.engine;
    if (s->start.pixel_size_x_A) s->engine_options.pixel_size_x_A = *s->start.pixel_size_x_A;
    if (s->start.pixel_size_y_A) s->engine_options.pixel_size_y_A = *s->start.pixel_size_y_A;
    s->first_arrival = arrival;
    s->last_save = arrival;
    if (!options_.out.empty()) {
      s->dir = (std::filesystem::path(options_.out) / s->start.series.DirectoryName()).string();
    }
    s->resumed = resumed != nullptr;
    s->journal = resumed ? std::move(resumed) : CreateJournal(*s);
    // A single-channel series' engine reads old frames back from the journal
    // (its records are keyed as the engine's Puts), so RAM holds a bounded
    // cache instead of every frame. Several channels are journaled under
    // their names; their engine keeps its frames in RAM.
    std::shared_ptr<FrameStore> store;
    if (s->journal && s->start.channels.empty()) store = s->journal;
    s->engine = factory_(s->engine_options, s->start.shape, store);
    if (!s->start.channels.empty()) {
      s->engine->SetChannels(s->start.channels,
                             s->start.channels[RegisterChannelIndex(s->start)]);
    }
    ended_series_.erase(s->start.series.ToString());
    series_ = std::move(s);
    counters_->Add(&DaemonCounts::series_started);
    publisher_->ClearLatest();
    SetCurrent();
    std::ostringstream shape;
    shape << series_->start.shape;
    publisher_->EmitEvent(Event::Info(
        "series_started",
        "series " + series_->start.series.ToString() + " started, shape " + shape.str() +
            ", dtype " + PixelTypeName(series_->start.dtype) +
            (series_->start.channels.empty()
                 ? ""
                 : ", channels " + JoinChannels(series_->start.channels) + " registered on " +
                       series_->start.channels[RegisterChannelIndex(series_->start)]),
        series_->start.series));
  }

  void OnSeriesStart(SeriesStart start) {
    if (series_ && series_->resumed && series_->start.series == start.series &&
        series_->start.shape == start.shape && series_->start.dtype == start.dtype &&
        series_->start.channels == start.channels) {
      // A sender re-sending its series_start after the daemon's restart: the
      // resumed series goes on.
      publisher_->EmitEvent(Event::Info("duplicate_series_start",
                      "series_start of the resumed series " + start.series.ToString() +
                          " sent again; the series goes on",
                      start.series, {}));
      return;
    }
    if (series_) EndSeries("series_start", std::nullopt, Clock::now());
    BeginSeries(std::move(start), false, Clock::now());
  }

  void Drop(const FrameMessage& f, const std::string& code, const std::string& message,
            const std::string& level = "error") {
    counters_->Add(&DaemonCounts::frames_dropped, 1, code);
    if (series_ && series_->start.series == f.series) ++series_->dropped;
    publisher_->EmitEvent(Event::Make(level, code, "frame " + std::to_string(f.index) + ": " + message, f.series, f.index));
  }

  void OnFrame(const FrameMessage& f, InboundItem& item) {
    if (!series_ || series_->start.series != f.series) {
      if (ended_series_.count(f.series.ToString()) > 0) {
        Drop(f, "series_ended", "series " + f.series.ToString() +
                                    " has ended; a new series_start restarts it");
        return;
      }
      if (series_) EndSeries("new_series", std::nullopt, item.arrival);
      SeriesStart start;
      start.series = f.series;
      start.shape = f.shape;
      start.dtype = f.dtype;
      start.channels = f.channels;  // registered on the first
      CountError("implicit_series_start");
      publisher_->EmitEvent(Event::Warning("implicit_series_start",
                               "frame of unknown series " + f.series.ToString() +
                                   " starts it without a series_start",
                               f.series, f.index));
      BeginSeries(std::move(start), true, item.arrival);
    }
    Series& s = *series_;
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
      counters_->Add(&DaemonCounts::frames_duplicate, 1, "duplicate_frame");
      publisher_->EmitEvent(Event::Info("duplicate_frame",
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
      // No clock from the sender: unknown (NaN), as for a stack file. The
      // daemon's arrival times jitter (a burst arrives in microseconds, a
      // stall adds tens of ms), and the engine predicts drift in time.
      header.timestamp_s = std::nan("");
    }
    header.timestamp_s = PlausibleTime(f, header.timestamp_s);
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

  // A sender time that is not plausible (not after the last, or an interval
  // far from the recent ones: a clock that jumped or runs backwards) becomes
  // unknown for that frame, so that the engine's drift prediction in time is
  // not misled; every such frame is counted (`implausible_timestamp`), the
  // first of a series is reported.
  double PlausibleTime(const FrameMessage& f, double time_s) {
    Series& s = *series_;
    const std::size_t before = s.time_check.implausible();
    const double judged = s.time_check.Judge(f.index, time_s);
    if (s.time_check.implausible() == before) return judged;
    CountError("implausible_timestamp");
    if (before == 0) {
      std::ostringstream message;
      message << "frame " << f.index << ": time " << std::setprecision(9) << time_s
              << " s is not plausible after the earlier frames' (not increasing, or an "
                 "interval far from the recent ones); its time is taken as unknown, and so "
                 "is every later implausible one (counted, not reported again)";
      publisher_->EmitEvent(
          Event::Warning("implausible_timestamp", message.str(), f.series, f.index));
    }
    return judged;
  }

  // SUB: a frame taken after waiting longer than max_queue_wait_s since it
  // was received is lost here, before its journal append, so that every
  // accepted frame waited within the bound (the receiver's admission estimate
  // only keeps the queue short). Counted and reported as the receiver's
  // `queue_wait` losses are; the next accepted frame reports the gap. PULL
  // holds the sender back instead and loses nothing.
  bool WaitedTooLong(const FrameMessage& f, Clock::time_point arrival) {
    if (options_.source_pattern == "pull" || !(options_.max_queue_wait_s > 0)) return false;
    const double waited_s = std::chrono::duration<double>(Clock::now() - arrival).count();
    if (waited_s <= options_.max_queue_wait_s) return false;
    counters_->Add(&DaemonCounts::frames_lost, 1, "queue_wait");
    std::ostringstream message;
    message << "frame " << f.index << " lost: the engine is behind and it waited "
            << std::setprecision(2) << waited_s << " s in the queue (bound "
            << options_.max_queue_wait_s << " s)";
    publisher_->EmitEvent(Event::Error("queue_wait", message.str(), f.series, f.index));
    return true;
  }

  // Appends a validated frame to the journal (it is accepted once there),
  // registers it and publishes the results. `replaying`: the frame comes from
  // the journal of a resumed series (not appended again, results published
  // once at the end of the replay). False when the frame was refused.
  // `channel_frames`: every channel's frame of a several-detector series, in
  // the series' order (empty for one channel; `frame` is the registered one).
  bool AcceptFrame(const FrameMessage& f, Frame frame, std::vector<Frame> channel_frames,
                   Clock::time_point arrival, bool replaying) {
    if (!replaying && WaitedTooLong(f, arrival)) return false;
    Series& s = *series_;
    const frame_id_t expected_next = s.last_index == kInvalidFrameId ? 0 : s.last_index + 1;
    if (f.index > expected_next) ReportGap(f, expected_next);

    if (s.journal && !replaying) {
      JournalFrameEntry entry;
      entry.index = frame.header().index;
      entry.wire_index = f.index;
      entry.timestamp_s = frame.header().timestamp_s;
      entry.shape = frame.shape();
      entry.scan_offset_px = f.scan_offset_px;  // so that a resumed series keeps it
      try {
        if (channel_frames.empty()) {
          s.journal->Append(entry, frame.view());
        } else {
          // One record per channel; a resume replays an index only when all
          // of its channels are there.
          for (std::size_t c = 0; c < channel_frames.size(); ++c) {
            entry.channel = s.start.channels[c];
            s.journal->Append(entry, channel_frames[c].view());
            entry.scan_offset_px.reset();  // one metadata record per position
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
    if (options_.keep_frames) kept = frame.Clone();
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
    counters_->Add(&DaemonCounts::frames_accepted);
    SetCurrent();
    if (kept) {
      try {
        s.engine->KeepFrame(s.dir, *kept);
      } catch (const std::exception& e) {
        CountError("output_error");
        publisher_->EmitEvent(Event::Error("output_error", std::string("frames.tif: ") + e.what(), f.series,
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
      publisher_->EmitEvent(Event::Error("journal_error",
                      std::string("no journal: frames are registered but not durable: ") + e.what(),
                      s.start.series, {}));
      return nullptr;
    }
  }

  JournalFrameStore::Options JournalOptions() const {
    JournalFrameStore::Options o;
    o.journal.sync = options_.journal_sync;
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
      publisher_->EmitEvent(Event::Error("journal_error",
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
    if (options_.out.empty()) return;
    namespace fs = std::filesystem;
    std::vector<std::pair<fs::file_time_type, fs::path>> unfinished;
    std::error_code ec;
    for (const fs::directory_entry& dir : fs::directory_iterator(options_.out, ec)) {
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
      publisher_->EmitEvent(Event::Warning("unfinished_series",
                      unfinished[k].second.string() +
                          " holds an unfinished series; only the newest is resumed",
                      {}, {}));
    }
    const std::string path = unfinished.back().second.string();
    try {
      ResumeFrom(path);
    } catch (const std::exception& e) {
      series_.reset();
      SetCurrent();
      CountError("resume_error");
      publisher_->EmitEvent(Event::Error("resume_error", "cannot resume " + path + ": " + e.what(), {}, {}));
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
    Series& s = *series_;
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
      f.scan_offset_px = entry.scan_offset_px;
      Frame frame = channel_frames[s.start.channels.empty() ? 0 : RegisterChannelIndex(s.start)]
                        .Clone();
      if (s.start.channels.empty()) channel_frames.clear();
      if (!AcceptFrame(f, std::move(frame), std::move(channel_frames), now, /*replaying=*/true)) {
        break;
      }
      ++replayed;
    }
    counters_->Add(&DaemonCounts::frames_recovered, replayed);
    counters_->Add(&DaemonCounts::journal_corruptions,
                   static_cast<std::int64_t>(scan.corruptions.size()));
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
    publisher_->Publish(EncodeEvent(
        event, {{"recovered_frames", replayed},
                {"dropped_records", static_cast<std::int64_t>(scan.corruptions.size())},
                {"dropped_bytes", static_cast<std::int64_t>(scan.DroppedBytes())}}));
    DaemonLog(event.level, message);  // always: once per start, and it matters
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
    series_->missing += event.missing_count;
    counters_->Add(&DaemonCounts::frames_missing, event.missing_count, "frame_gap");
    publisher_->EmitEvent(std::move(event));
  }

  // Publishes drift (and quality; average when due) for the current series.
  void PublishResults(Clock::time_point arrival, bool final, bool force_average) {
    Series& s = *series_;
    const EngineQuality& quality = s.result.quality;
    DriftUpdate d;
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
    publisher_->PublishDrift(std::move(d), arrival);
    const int n_frames = static_cast<int>(s.wire_indices.size());
    const bool force = final || force_average;
    UpdateImageQuality(force);
    publisher_->Publish(EncodeQuality(s.start.series, quality,
                          s.image_quality ? &*s.image_quality : nullptr, PixelSizeYx(),
                          &s.quality_history));
    AnnounceGoodAndStop();
    const Clock::time_point now = Clock::now();
    const bool due =
        !s.have_average || std::chrono::duration<double>(now - s.last_average).count() >=
                               options_.average_interval_s;
    if (force || due) {
      PublishAverages(n_frames);
      // The raw frame and the matrices share the average's timer: the
      // viewer shows them side by side, and each costs a copy per message.
      const Frame latest = s.engine->LatestFrame();
      if (!latest.pixels().empty()) {
        publisher_->Publish(EncodeLatestFrame(s.start.series, n_frames, s.last_index, latest));
      }
      // The bounded overview, never the dense k x k matrix: at most 256^2
      // cells whatever k, built in one pass over the stored pairs
      // (core/shift_matrix_view.hpp).
      const RegistrationResult with_view = s.engine->Snapshot(ResultRequest::ShiftMatrixOverview());
      if (with_view.shift_matrix_view && with_view.shift_matrix_view->k > 0) {
        publisher_->Publish(EncodeMatrices(s.start.series, n_frames, *with_view.shift_matrix_view));
      }
      s.last_average = now;
      s.have_average = true;
    }
  }

  // One `average` and one `mosaic` per channel: the other channels first,
  // the registration channel last (its header is the one `snapshot` returns).
  void PublishAverages(int n_frames) {
    const Series& s = *series_;
    if (s.start.channels.empty()) {
      PublishAverage(n_frames, s.engine->Average(), "");
      return;
    }
    const std::string& registered = s.start.channels[RegisterChannelIndex(s.start)];
    for (const std::string& channel : s.start.channels) {
      if (channel != registered) PublishAverage(n_frames, s.engine->ChannelAverage(channel), channel);
    }
    PublishAverage(n_frames, s.engine->Average(), registered);
  }

  // `average` (frame 0's window) and, from the same image, `mosaic` (the
  // whole extent, binned to --mosaic-max-px).
  void PublishAverage(int n_frames, const AverageImage& image, const std::string& channel) {
    // A one-channel series has no channel names: `channel` is "" and
    // s.start.channels empty.
    const Series& s = *series_;
    publisher_->Publish(EncodeAverage(s.start.series, n_frames, image, channel, s.start.channels));
    if (options_.mosaic_max_px == 0 || image.mosaic_extent.Empty()) return;
    const MosaicPreview preview = MakeMosaicPreview(image, s.start.shape, options_.mosaic_max_px);
    publisher_->Publish(
        EncodeMosaic(s.start.series, n_frames, image.num_included, preview, channel, s.start.channels));
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
    DriftPredictionOptions prediction;
    prediction.window_frames = std::max(2, s.engine_options.drift_window_frames);
    return PredictNextShift(trace, prediction);
  }

  // The series' effective pixel size [y, x], Å; nullopt when unknown.
  std::optional<std::array<double, 2>> PixelSizeYx() const {
    const EngineOptions& e = series_->engine_options;
    if (!(e.pixel_size_x_A > 0) || !(e.pixel_size_y_A > 0)) return std::nullopt;
    return std::array<double, 2>{e.pixel_size_y_A, e.pixel_size_x_A};
  }

  // Recomputes the image quality when --quality-interval-s has passed since
  // the last computation (or when forced: the last frame of a series). A
  // failure is an event; the previous figures stay.
  void UpdateImageQuality(bool force) {
    Series& s = *series_;
    const Clock::time_point now = Clock::now();
    const bool due = !s.image_quality ||
                     std::chrono::duration<double>(now - s.last_image_quality).count() >=
                         options_.quality_interval_s;
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
      publisher_->EmitEvent(Event::Error("quality_error", std::string("image quality: ") + e.what(),
                             s.start.series, s.last_index));
    }
    s.last_image_quality = now;
  }

  // Publishes the `good` and `stop` events the first time each holds in the
  // series. On the engine thread, so they wait for room rather than drop.
  void AnnounceGoodAndStop() {
    Series& s = *series_;
    if (!s.image_quality) return;
    const ImageQualityReport& r = *s.image_quality;
    if (r.good && !s.good_announced) {
      s.good_announced = true;
      publisher_->Publish(EncodeEvent(Event::Info("good", r.reason, s.start.series, s.last_index)));
    }
    if (r.stop && !s.stop_announced) {
      s.stop_announced = true;
      publisher_->Publish(EncodeEvent(Event::Info("stop", r.reason, s.start.series, s.last_index)));
    }
  }

  // The daemon's part of report.json. Its `image_quality` section comes from
  // the back end (WriteRegistrationOutputs computes it fresh, FRC curves
  // included), as for `livealign register`.
  nlohmann::json SeriesExtra(const std::string& reason,
                             std::optional<std::int64_t> frames_sent) const {
    const Series& s = *series_;
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
          {"daemon_options", options_.ToJson()}}}};
  }

  // Writes the outputs of the running series; returns the files (empty
  // without --out) or throws.
  std::vector<std::string> WriteOutputs(const std::string& reason,
                                        std::optional<std::int64_t> frames_sent) {
    if (series_->dir.empty() || series_->wire_indices.empty()) return {};
    // The image quality just published describes this state when it counts
    // the same frames (always so at a series end, where it is recomputed
    // after Finish); otherwise the writer computes it.
    const Series& s = *series_;
    const bool current = s.image_quality && s.image_quality->num_frames ==
                                                static_cast<int>(s.wire_indices.size());
    return s.engine->WriteOutputs(s.dir, SeriesExtra(reason, frames_sent),
                                  current ? &*s.image_quality : nullptr);
  }

  void MaybeSave() {
    if (options_.save_interval_s <= 0 || series_->dir.empty()) return;
    const Clock::time_point now = Clock::now();
    if (std::chrono::duration<double>(now - series_->last_save).count() < options_.save_interval_s ||
        inbound_->Size() > 0) {
      return;
    }
    series_->last_save = now;
    try {
      WriteOutputs("periodic", std::nullopt);
    } catch (const std::exception& e) {
      CountError("output_error");
      publisher_->EmitEvent(Event::Error("output_error", e.what(), series_->start.series));
    }
  }

  void EndSeries(const std::string& reason, std::optional<std::int64_t> frames_sent,
                 Clock::time_point arrival) {
    Series& s = *series_;
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
        publisher_->EmitEvent(Event::Error("engine_error", std::string("finish: ") + e.what(),
                               s.start.series));
      }
      try {
        summary.files = WriteOutputs(reason, frames_sent);
      } catch (const std::exception& e) {
        summary.error = e.what();
        CountError("output_error");
        publisher_->EmitEvent(Event::Error("output_error", e.what(), s.start.series));
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
      publisher_->EmitEvent(Event::Warning("frames_short",
                               "sender reports " + std::to_string(*frames_sent) + " frames, " +
                                   std::to_string(s.wire_indices.size()) + " registered",
                               s.start.series));
    }
    FinishJournal(s, reason);
    ended_series_.insert(s.start.series.ToString());
    series_.reset();
    counters_->Add(&DaemonCounts::series_completed);
    SetCurrent();
    // One line per completed series in the daemon's log.
    if (options_.log_events) {
      DaemonLog("info", "series " + summary.series.ToString() + " ended (" + reason + "): " +
                      std::to_string(summary.n_frames) + " frames" +
                      (summary.files.empty() ? "" : ", outputs in " + summary.dir));
    }
    // Last, so that `status` already shows the series as ended to anyone who
    // reacts to this message.
    publisher_->Publish(EncodeSeriesEnd(summary));
  }

  void OnSeriesEnd(const SeriesEnd& end, Clock::time_point arrival) {
    if (!series_ || series_->start.series != end.series) {
      CountError("unknown_series");
      publisher_->EmitEvent(Event::Warning("unknown_series",
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
      if (!series_) {
        reply = {{"ok", false}, {"error", "no series is running"}};
      } else {
        try {
          reply["files"] = WriteOutputs("save", std::nullopt);
          reply["series"] = series_->start.series.ToString();
        } catch (const std::exception& e) {
          reply = {{"ok", false}, {"error", e.what()}};
        }
      }
    } else if (command.cmd == "reset") {
      // Abandons the running series without writing it; counters stay
      // (they describe the daemon's whole life).
      reply["discarded_series"] = series_ ? nlohmann::json(series_->start.series.ToString())
                                         : nlohmann::json();
      reply["discarded_frames"] = series_ ? series_->wire_indices.size() : 0;
      if (series_) {
        FinishJournal(*series_, "reset");
        publisher_->EmitEvent(Event::Warning("series_reset", "series abandoned by a reset request",
                                 series_->start.series));
      }
      series_.reset();
      ended_series_.clear();
      // Always announced, so viewers clear their state (and a subscriber can
      // use a reset to learn that its subscription is live).
      publisher_->EmitEvent(Event::Info("reset", "daemon reset"));
      publisher_->ClearLatest();
      SetCurrent();
    } else if (command.cmd == "matrices_window") {
      reply = PublishMatricesWindow(command.window);
    }
    command.reply->set_value(reply);
  }

  // Answers a `matrices_window` request: the window goes out on its topic
  // (bounded, kShiftMatrixWindowMaxSize^2 entries), the reply says which.
  nlohmann::json PublishMatricesWindow(const ShiftMatrixWindowRequest& window) {
    auto refuse = [this](const std::string& code, const std::string& error) {
      CountError(code);
      return nlohmann::json{{"ok", false}, {"error", error}, {"code", code}};
    };
    if (!series_) return refuse("no_series", "matrices_window: no series is running");
    const Series& s = *series_;
    const int k = s.result.num_frames();
    const std::string error = ShiftMatrixWindowError(k, window);
    if (!error.empty()) return refuse("bad_window", "matrices_window: " + error);
    ResultRequest request;
    request.shift_matrix_window = window;
    RegistrationResult result;
    try {
      result = s.engine->Snapshot(request);
    } catch (const std::invalid_argument& e) {
      // Checked above against the same k; a back end that disagrees is
      // refused like a bad request rather than ending the series thread.
      return refuse("bad_window", std::string("matrices_window: ") + e.what());
    }
    if (!result.shift_matrix_window) {
      return refuse("no_matrices", "matrices_window: this engine has no shift matrices");
    }
    const int n_frames = static_cast<int>(s.wire_indices.size());
    publisher_->Publish(EncodeMatricesWindow(s.start.series, n_frames, *result.shift_matrix_window));
    return nlohmann::json{{"ok", true}, {"error", ""}, {"topic", "matrices_window"},
                          {"series", s.start.series.ToString()}, {"k", k},
                          {"i0", window.i0}, {"j0", window.j0}, {"n", window.n}};
  }

  // The drain deadline has passed: what is still queued is not registered.
  // Never silent: counted and reported.
  void DiscardQueuedOnStop() {
    const std::int64_t left = static_cast<std::int64_t>(inbound_->Size());
    inbound_->Stop();
    if (left == 0) return;
    counters_->Add(&DaemonCounts::frames_discarded_on_stop, left, "drain_timeout");
    publisher_->EmitEvent(Event::Error("drain_timeout",
                    std::to_string(left) + " queued message(s) not registered: the drain took "
                    "longer than --drain-timeout-s (" + std::to_string(options_.drain_timeout_s) +
                    " s)",
                    series_ ? std::optional<SeriesId>(series_->start.series) : std::nullopt, {}));
  }
};

SeriesRunner::SeriesRunner(const DaemonOptions& options, LiveEngineFactory factory,
                           InboundQueue* inbound, ResultPublisher* publisher,
                           DaemonCounters* counters, const StopSignal* stop,
                           QueueWaitEstimate* queue_wait)
    : impl_(std::make_unique<Impl>(options, std::move(factory), inbound, publisher, counters,
                                   stop, queue_wait)) {}

SeriesRunner::~SeriesRunner() = default;

void SeriesRunner::Run() { impl_->Run(); }

CurrentSeries SeriesRunner::Current() const {
  std::lock_guard<std::mutex> lock(impl_->current_mutex);
  return impl_->current;
}

}  // namespace livealign
