#pragma once
// QueueWaitEstimate: how long a frame entering the inbound queue would wait
// before the series thread takes it, so that a SUB receiver can refuse frames
// whose drift message would come too late to be of use (DaemonOptions::
// max_queue_wait_s) instead of letting the wait grow to a full queue's worth,
// and a PULL receiver holds the sender back until a frame would wait no
// longer than that.
// With SUB it only keeps the queue short: the bound itself is enforced when a
// frame is taken (stream/series_runner.cpp drops a frame that waited longer
// before journaling it), so an estimate that reads low costs frames, not
// latency. With PULL nothing is dropped, and the bound holds as well as the
// estimate does.
//
// What a frame behind a saturated queue waits for is the interval between two
// of the series thread's pops: the whole turn of the item ahead (journal,
// engine, publishing, releasing its payload, the pop itself), including the
// time other threads took the CPU from it. So the samples are the intervals
// between consecutive pops that did not wait for an item (the queue was not
// empty); an interval that began or ended with an idle wait says nothing about
// the engine. The estimate is the frames queued ahead times an exponential
// moving average of those intervals, so that one slow update (a re-solve, a
// lattice re-estimate) does not decide alone. Before the first sample the
// estimate is 0: nothing is refused on a guess.
//
// Thread-safe: one writer (the series thread), any number of readers.
//
//   series thread:   wait.RecordPop(Clock::now(), /*queue_was_empty=*/...);
//   receiver thread: if (wait.ExpectedWaitS(queued) > bound) refuse;

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <optional>

namespace livealign {

class QueueWaitEstimate {
 public:
  using Clock = std::chrono::steady_clock;

  // Weight of the newest interval in the moving average: about the last ten
  // count.
  static constexpr double kNewestWeight = 0.1;

  // The series thread took an item at `now`; `queue_was_empty`: it had to
  // wait for one (then the interval since the previous pop was partly idle).
  // Series thread only.
  void RecordPop(Clock::time_point now, bool queue_was_empty) {
    if (previous_pop_ && !queue_was_empty) {
      RecordIntervalSeconds(std::chrono::duration<double>(now - *previous_pop_).count());
    }
    previous_pop_ = now;
  }

  // One sample of the time per queued item.
  void RecordIntervalSeconds(double seconds) {
    if (!(seconds >= 0)) return;
    const double previous = seconds_per_frame_.load(std::memory_order_relaxed);
    const double next =
        previous == 0 ? seconds : previous + kNewestWeight * (seconds - previous);
    seconds_per_frame_.store(next, std::memory_order_relaxed);
  }

  double SecondsPerFrame() const { return seconds_per_frame_.load(std::memory_order_relaxed); }

  // Seconds until the series thread reaches a frame queued behind
  // `frames_ahead` others (it waits for them and for the turn in progress).
  double ExpectedWaitS(std::size_t frames_ahead) const {
    return static_cast<double>(frames_ahead + 1) * SecondsPerFrame();
  }

  // The most frames that may be queued ahead of a new one for it to wait at
  // most `bound_s` at `seconds_per_frame` (the inverse of ExpectedWaitS; 0
  // when even one turn is longer: the frame then waits for an empty queue).
  static std::size_t FramesAheadWithin(double bound_s, double seconds_per_frame) {
    const double frames = std::floor(bound_s / seconds_per_frame) - 1;
    if (!(frames > 0)) return 0;
    if (frames > 1e9) return static_cast<std::size_t>(1e9);
    return static_cast<std::size_t>(frames);
  }

 private:
  std::atomic<double> seconds_per_frame_{0.0};
  std::optional<Clock::time_point> previous_pop_;  // series thread only
};

}  // namespace livealign
