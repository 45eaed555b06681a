#pragma once
// The daemon's stop request, shared by every part: set once by Stop() or a
// `shutdown` request, read by the socket threads (which end their loops) and
// by the series thread (whose drain of the queued frames is bounded by
// --drain-timeout-s counted from the request). Lock-free: two atomics, the
// time written before the flag.

#include <atomic>
#include <chrono>

namespace livealign {

class StopSignal {
 public:
  using Clock = std::chrono::steady_clock;

  explicit StopSignal(double drain_timeout_s) : drain_timeout_s_(drain_timeout_s) {}

  // Idempotent; the drain deadline counts from the first call.
  void Request() {
    Clock::rep unset = 0;
    stop_time_ticks_.compare_exchange_strong(unset, Clock::now().time_since_epoch().count());
    requested_.store(true);
  }
  bool requested() const { return requested_.load(); }

  // True once a stop was requested longer than drain_timeout_s ago.
  bool DrainExpired() const {
    const Clock::rep ticks = stop_time_ticks_.load();
    if (ticks == 0) return false;
    const Clock::time_point stopped{Clock::duration(ticks)};
    return std::chrono::duration<double>(Clock::now() - stopped).count() > drain_timeout_s_;
  }
  double drain_timeout_s() const { return drain_timeout_s_; }

 private:
  const double drain_timeout_s_;
  std::atomic<Clock::rep> stop_time_ticks_{0};  // 0 until the first Request()
  std::atomic<bool> requested_{false};
};

}  // namespace livealign
