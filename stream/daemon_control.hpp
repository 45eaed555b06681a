#pragma once
// The daemon's control part: owns the REP socket and answers `status`,
// `snapshot`, `save`, `reset`, `matrices_window` and `shutdown`
// (docs/protocol.md, Control). status and snapshot are answered here, from
// the counters, the series part's summary and the publisher's latest
// headers; save, reset and matrices_window are queued for the series thread
// (after the frames already queued; it owns the engine) and their reply
// awaited; shutdown asks the daemon to stop. With
// control_token_required, state-changing commands need the token.
//
// Threads: Bind before Run(); Run() is the control thread (the only user of
// the socket). Answer() is what Run() does with one request (public so that
// it can be tested without a socket).

#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "stream/codec.hpp"
#include "stream/daemon.hpp"
#include "stream/daemon_counters.hpp"
#include "stream/daemon_inbound.hpp"
#include "stream/result_publisher.hpp"
#include "stream/stop_signal.hpp"

namespace livealign {

// Why a state-changing command is refused ("" when it may run): see
// DaemonOptions::control_token_required. The comparison takes the same time
// wherever the tokens differ.
std::string ControlRefusal(const DaemonOptions& options, const ControlRequest& request);

class DaemonControl {
 public:
  // `status`: the `status` reply's fields. `request_stop`: what `shutdown`
  // does, after its reply has been sent.
  DaemonControl(const DaemonOptions& options, InboundQueue* inbound,
                const ResultPublisher* publisher, DaemonCounters* counters,
                const StopSignal* stop, std::function<nlohmann::json()> status,
                std::function<void()> request_stop);

  std::string Bind(zmq::context_t& context);  // returns the endpoint bound

  // The control thread: answers requests until a stop.
  void Run();

  // The encoded reply to one encoded request; *shutdown is set when the
  // daemon is to stop once the reply is sent.
  std::string Answer(std::string_view request, bool* shutdown);

  // A request from the web page, which has no reply channel but the
  // published topics: only `matrices_window` is carried out (queued for the
  // series thread; its answer is the published window). Anything else is
  // refused (page_request_refused); a request beyond
  // kMaxPendingPageRequests not yet answered, or one that cannot be queued,
  // is dropped (page_request_dropped): pages cannot pile work (and 0.6 MB
  // messages) onto the series thread. Any thread; never blocks (the HTTP
  // server's I/O thread calls it).
  void SubmitPageRequest(std::string_view request);
  static constexpr std::size_t kMaxPendingPageRequests = 4;

 private:
  std::string Carry(const ControlRequest& request);

  const DaemonOptions& options_;
  InboundQueue* const inbound_;
  const ResultPublisher* const publisher_;
  DaemonCounters* const counters_;
  const StopSignal* const stop_;
  const std::function<nlohmann::json()> status_;
  const std::function<void()> request_stop_;
  zmq::socket_t socket_;  // control thread only (after Bind)
  std::mutex page_mutex_;
  std::vector<std::future<nlohmann::json>> page_pending_;  // under page_mutex_
};

}  // namespace livealign
