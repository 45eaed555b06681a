#pragma once
// The daemon's publishing part: the only place output leaves. It owns the
// PUB socket and the ResultSinks (the HTTP preview), the outbound queue of
// messages every other part hands it, and the latest header of each
// snapshot topic (drift, quality, average) that `snapshot` returns.
//
// Threads: Run() is the publisher thread (the PUB socket is used there
// only). Publish/PublishDrift/EmitEvent/Close/Latest/ClearLatest may be
// called from any thread; AddSink and Bind before Run().

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "stream/bounded_queue.hpp"
#include "stream/codec.hpp"
#include "stream/daemon_counters.hpp"
#include "stream/out_message.hpp"

namespace livealign {

// Writes one line to the daemon's log (stderr).
void DaemonLog(const std::string& level, const std::string& line);

// The latest header of each topic `snapshot` answers with ("" when none since
// the last series start or reset), and the latency of the latest drift.
struct LatestHeaders {
  std::string drift, quality, average;
  std::optional<double> drift_latency_ms;
};

class ResultPublisher {
 public:
  using Clock = std::chrono::steady_clock;

  // `log_events`: warning and error events also go to the log.
  ResultPublisher(DaemonCounters* counters, bool log_events);
  ResultPublisher(const ResultPublisher&) = delete;
  ResultPublisher& operator=(const ResultPublisher&) = delete;

  void AddSink(ResultSink* sink) { sinks_.push_back(sink); }
  // Creates and binds the PUB socket; returns the endpoint bound (tcp port
  // resolved). Without it, messages go to the sinks only.
  std::string Bind(zmq::context_t& context, const std::string& endpoint);

  // Queues a message; waits while the outbound queue is full (the series
  // thread: results must not be lost). False once Close()d.
  bool Publish(OutMessage message);
  // A drift update, encoded when it is sent so that its latency_ms covers
  // everything up to then. `arrival`: of the frame it is for.
  bool PublishDrift(DriftUpdate drift, Clock::time_point arrival);
  // An event from any thread. Never waits: when the outbound queue is full
  // the event is counted in events_dropped instead (the receiver must not
  // block).
  void EmitEvent(const Event& event);
  // No more messages: Run() returns once the queued ones are sent.
  void Close() { outbound_.Close(); }

  // The publisher thread: sends every queued message, in order, on the PUB
  // socket and to every sink, until Close().
  void Run();

  LatestHeaders Latest() const;
  // Forgets the latest headers (a new series, a reset).
  void ClearLatest();

 private:
  struct OutItem {
    OutMessage message;
    bool is_drift = false;
    DriftUpdate drift;
    Clock::time_point arrival;  // of the frame a drift update is for
  };
  void Send(const OutMessage& message);

  DaemonCounters* const counters_;
  const bool log_events_;
  std::vector<ResultSink*> sinks_;  // fixed once Run() starts
  zmq::socket_t socket_;            // publisher thread only (after Bind)
  BoundedQueue<OutItem> outbound_;  // locks itself

  mutable std::mutex latest_mutex_;  // guards latest_ (written by Run, read by control)
  LatestHeaders latest_;
};

}  // namespace livealign
