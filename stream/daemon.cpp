#include "stream/daemon.hpp"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include <zmq.hpp>

#include "stream/daemon_control.hpp"
#include "stream/daemon_counters.hpp"
#include "stream/daemon_inbound.hpp"
#include "stream/daemon_receiver.hpp"
#include "stream/result_publisher.hpp"
#include "stream/series_runner.hpp"
#include "stream/stop_signal.hpp"

namespace livealign {

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
  if (!(max_queue_wait_s >= 0)) return fail("--max-queue-wait-s must be >= 0");
  if (!(average_interval_s >= 0)) return fail("--average-interval-s must be >= 0");
  if (mosaic_max_px < 0) return fail("--mosaic-max-px must be >= 0");
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
                        {"max_queue_wait_s", max_queue_wait_s},
                        {"average_interval_s", average_interval_s},
                        {"mosaic_max_px", mosaic_max_px},
                        {"quality_interval_s", quality_interval_s},
                        {"save_interval_s", save_interval_s},
                        {"log_events", log_events},
                        {"drain_timeout_s", drain_timeout_s},
                        {"journal_sync", journal_sync}};
}

// The daemon is its four parts wired together; each owns its socket and its
// state and guards what others read with its own lock (the parts' headers
// say what). What they share is passed in: the inbound queue (receiver and
// control -> series), the publisher (everyone -> the PUB socket and the
// sinks), the counters and the stop signal.
struct Daemon::Impl {
  Impl(const DaemonOptions& o, LiveEngineFactory factory)
      : options(o),
        stop(o.drain_timeout_s),
        inbound(static_cast<std::size_t>(o.queue_bytes), 0),
        publisher(&counters, o.log_events),
        receiver(options, &inbound, &publisher, &counters, &stop, &queue_wait),
        series(options, std::move(factory), &inbound, &publisher, &counters, &stop, &queue_wait),
        control(options, &inbound, &publisher, &counters, &stop, [this] { return Status(); },
                [this] { RequestStop(); }) {}

  const DaemonOptions options;
  const std::chrono::steady_clock::time_point start_time = std::chrono::steady_clock::now();
  StopSignal stop;
  // Before the parts: their sockets must close before the context ends.
  zmq::context_t context{1};
  DaemonCounters counters;
  InboundQueue inbound;
  QueueWaitEstimate queue_wait;  // series thread -> receiver (SUB admission)
  ResultPublisher publisher;
  DaemonReceiver receiver;
  SeriesRunner series;
  DaemonControl control;
  std::thread receiver_thread, series_thread, publisher_thread, control_thread;
  bool started = false;  // the controlling thread's (Start/Wait/AddSink)

  void RequestStop() {
    // The receiver stops taking frames (after draining the socket) and closes
    // the queue; the series thread registers what is queued within the drain
    // deadline, then finishes the series.
    stop.Request();
    if (!started) inbound.Stop();
  }

  nlohmann::json Status() const {
    const CurrentSeries current = series.Current();
    const LatestHeaders latest = publisher.Latest();
    nlohmann::json status{
        {"state", stop.requested() ? "stopping" : (current.active ? "running" : "idle")},
        {"series", current.active ? nlohmann::json(current.series) : nlohmann::json()},
        {"n_frames", current.n_frames}};
    status.update(counters.Snapshot().ToJson());
    status.update(nlohmann::json{
        {"queue_bytes", inbound.Bytes()},
        {"queue_items", inbound.Size()},
        {"queue_high_water_bytes", inbound.HighWaterBytes()},
        {"queue_capacity_bytes", inbound.max_bytes()},
        {"last_latency_ms", latest.drift_latency_ms ? nlohmann::json(*latest.drift_latency_ms)
                                                    : nlohmann::json()},
        {"uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time)
                         .count()},
        {"source_pattern", options.source_pattern},
        {"out", options.out}});
    return status;
  }
};

Daemon::Daemon(const DaemonOptions& options, LiveEngineFactory factory)
    : impl_(std::make_unique<Impl>(options, std::move(factory))) {}

Daemon::~Daemon() {
  Stop();
  Wait();
}

void Daemon::AddSink(ResultSink* sink) {
  if (impl_->started) throw std::logic_error("Daemon::AddSink after Start");
  impl_->publisher.AddSink(sink);
}

void Daemon::Start() {
  if (impl_->started) throw std::logic_error("Daemon::Start called twice");
  std::string error;
  if (!impl_->options.Check(&error)) throw std::invalid_argument(error);
  Impl& d = *impl_;
  source_endpoint_ = d.receiver.Open(d.context);
  publish_endpoint_ = d.publisher.Bind(d.context, d.options.publish);
  control_endpoint_ = d.control.Bind(d.context);
  if (!d.options.out.empty()) std::filesystem::create_directories(d.options.out);

  d.started = true;
  // Sockets migrate to their threads here; thread creation is the full memory
  // barrier ZeroMQ asks for.
  d.publisher_thread = std::thread([&d] { d.publisher.Run(); });
  d.series_thread = std::thread([&d] { d.series.Run(); });
  d.receiver_thread = std::thread([&d] { d.receiver.Run(); });
  d.control_thread = std::thread([&d] { d.control.Run(); });
}

void Daemon::Stop() { impl_->RequestStop(); }

bool Daemon::StopRequested() const { return impl_->stop.requested(); }

void Daemon::Wait() {
  Impl& d = *impl_;
  if (!d.started) return;
  // The control thread only ends on a stop; waiting for it first means Wait()
  // also returns after a `shutdown` request.
  if (d.control_thread.joinable()) d.control_thread.join();
  if (d.receiver_thread.joinable()) d.receiver_thread.join();
  if (d.series_thread.joinable()) d.series_thread.join();
  if (d.publisher_thread.joinable()) d.publisher_thread.join();
}

nlohmann::json Daemon::Status() const { return impl_->Status(); }

void Daemon::SubmitPageRequest(std::string_view request) { impl_->control.SubmitPageRequest(request); }

}  // namespace livealign
