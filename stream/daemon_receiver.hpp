#pragma once
// The daemon's receiving part: owns the source socket (SUB or PULL), decodes
// each message's header and checks its part sizes (no pixel is touched) and
// queues it for the series thread. It never waits on computation: with PULL
// a full queue, or one a new frame would wait longer in than
// DaemonOptions::max_queue_wait_s (by `queue_wait`'s estimate), holds the
// sender back (back-pressure); with SUB a frame that
// finds the queue full is lost, counted (frames_lost) and reported
// (`queue_full`), and so is one that would wait longer than
// DaemonOptions::max_queue_wait_s (`queue_wait`, judged by `queue_wait`, the
// series thread's estimate; none when null; the series thread enforces the
// bound itself when it takes the frame). Series boundaries cost no bytes
// and are never lost.
//
// Threads: Bind/Connect before Run(); Run() is the receiver thread (the only
// user of the socket); Handle() is what Run() does with one message (public
// so that it can be tested without a socket).

#include <string>
#include <vector>

#include <zmq.hpp>

#include "stream/daemon.hpp"
#include "stream/daemon_counters.hpp"
#include "stream/daemon_inbound.hpp"
#include "stream/queue_wait.hpp"
#include "stream/result_publisher.hpp"
#include "stream/stop_signal.hpp"

namespace livealign {

class DaemonReceiver {
 public:
  DaemonReceiver(const DaemonOptions& options, InboundQueue* inbound, ResultPublisher* publisher,
                 DaemonCounters* counters, const StopSignal* stop,
                 const QueueWaitEstimate* queue_wait = nullptr);

  // Creates the socket and binds (options.source_bind) or connects it;
  // returns the endpoint (the bound one, tcp port resolved).
  std::string Open(zmq::context_t& context);

  // The receiver thread: takes messages until a stop, then what senders had
  // already handed to ZeroMQ (bounded), then closes the queue so that the
  // series thread ends once it has registered what is queued.
  void Run();

  // Decodes one message (its parts are consumed) and queues it. False when
  // the queue was stopped (the daemon is ending).
  bool Handle(std::vector<zmq::message_t>& parts);

 private:
  // Takes every message ready on the socket, at most `budget`; false when
  // the receiver must end (the context or the queue is gone).
  bool ReceiveReady(int budget, int* taken);
  void DrainSocketOnStop();

  const DaemonOptions& options_;
  const bool pull_;
  InboundQueue* const inbound_;
  ResultPublisher* const publisher_;
  DaemonCounters* const counters_;
  const StopSignal* const stop_;
  const QueueWaitEstimate* const queue_wait_;
  zmq::socket_t socket_;  // receiver thread only (after Open)
  std::vector<zmq::message_t> parts_;
};

}  // namespace livealign
