#pragma once
// QueueWaitEstimate: how long a frame entering the inbound queue would wait
// before the series thread takes it, so that a SUB receiver can refuse frames
// whose drift message would come too late to be of use (DaemonOptions::
// max_queue_wait_s) instead of letting the wait grow to a full queue's worth.
//
// The series thread records how long each frame took it (journal, engine,
// publishing: everything between two frames of a saturated queue); the
// estimate is the frames queued ahead times an exponential moving average of
// those times, so that one slow update (a re-solve, a lattice re-estimate)
// does not decide alone. Before the first frame the estimate is 0: nothing is
// refused on a guess.
//
// Thread-safe: one writer (the series thread), any number of readers.
//
//   series thread:   wait.RecordFrameSeconds(seconds);
//   receiver thread: if (wait.ExpectedWaitS(queued) > bound) refuse;

#include <atomic>
#include <cstddef>

namespace livealign {

class QueueWaitEstimate {
 public:
  // Weight of the newest frame in the moving average: about the last ten
  // frames count.
  static constexpr double kNewestWeight = 0.1;

  void RecordFrameSeconds(double seconds) {
    if (!(seconds >= 0)) return;
    const double previous = seconds_per_frame_.load(std::memory_order_relaxed);
    const double next =
        previous == 0 ? seconds : previous + kNewestWeight * (seconds - previous);
    seconds_per_frame_.store(next, std::memory_order_relaxed);
  }

  double SecondsPerFrame() const { return seconds_per_frame_.load(std::memory_order_relaxed); }

  // Seconds until the series thread reaches a frame queued behind
  // `frames_ahead` others (it waits for them and for itself).
  double ExpectedWaitS(std::size_t frames_ahead) const {
    return static_cast<double>(frames_ahead + 1) * SecondsPerFrame();
  }

 private:
  std::atomic<double> seconds_per_frame_{0.0};
};

}  // namespace livealign
