#pragma once
// The daemon's series part: the series thread. It takes the work items the
// receiver and control parts queue and owns everything about the running
// series: its validation (series, shape, dtype, channels, index order and
// duplicates, NaN/Inf, constant), its write-ahead journal (with --out a
// frame is accepted once it is journaled) and the resume of an unfinished
// one after a restart, its LiveEngine, the rate-limited results it hands to
// the publisher and the outputs it writes. The engine is read in one place,
// PublishResults.
//
// Threads: Run() is the series thread, the only one that touches the series;
// Current() may be called from any thread.

#include <memory>
#include <mutex>
#include <string>

#include "stream/daemon.hpp"
#include "stream/daemon_counters.hpp"
#include "stream/daemon_inbound.hpp"
#include "stream/live_engine.hpp"
#include "stream/queue_wait.hpp"
#include "stream/result_publisher.hpp"
#include "stream/stop_signal.hpp"

namespace livealign {

// What `status` reports of the running series.
struct CurrentSeries {
  bool active = false;
  std::string series;  // SeriesId::ToString; "" when idle
  int n_frames = 0;    // frames accepted in it
};

class SeriesRunner {
 public:
  SeriesRunner(const DaemonOptions& options, LiveEngineFactory factory, InboundQueue* inbound,
               ResultPublisher* publisher, DaemonCounters* counters, const StopSignal* stop,
               QueueWaitEstimate* queue_wait = nullptr);
  ~SeriesRunner();
  SeriesRunner(const SeriesRunner&) = delete;
  SeriesRunner& operator=(const SeriesRunner&) = delete;

  // The series thread: resumes an unfinished series (with --out), then
  // carries out the queued items until the queue is closed and empty (or the
  // drain deadline of a stop has passed: what is left is counted in
  // frames_discarded_on_stop and reported), finishes the running series and
  // closes the publisher.
  void Run();

  CurrentSeries Current() const;

 private:
  // The series thread's state and its steps (series_runner.cpp).
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace livealign
