#pragma once
// TimestampCheck: whether a sender's frame times are plausible, so that a
// clock that jumps or runs backwards does not mislead the engine's drift
// prediction in time (core/drift_prediction.hpp, core/pair_search.hpp), which
// turns a time step into a shift step. A frame whose time is implausible gets
// an unknown time (NaN), which the engine handles per frame (it predicts on
// frame indices where times are unknown or not increasing).
//
// The rule, per frame in acceptance order (wire indices increasing; frames
// lost on the way leave gaps, so intervals are taken per index step):
//   - not after the last plausible frame's time: implausible (non-monotonic);
//   - once kMinIntervals intervals are known, an interval per index step more
//     than kMaxIntervalRatio times longer or shorter than the median of the
//     recent kRecentIntervals: implausible (a jump, or a clock at another rate).
// A clock that jumped once and then runs on steadily is taken as the new
// clock after two consecutive frames agree with each other (the first of them
// stays unknown); otherwise one bad frame would make every later one bad.
// Unknown times (NaN) in are unknown out, and judge nothing.
//
// Not thread-safe: one per series, used by the series thread.
//
//   TimestampCheck check;
//   for each frame: double t = check.Judge(index, time_s);  // NaN when implausible

#include <cstddef>
#include <deque>
#include <optional>

#include "core/frame.hpp"

namespace livealign {

class TimestampCheck {
 public:
  static constexpr double kMaxIntervalRatio = 4.0;
  static constexpr std::size_t kMinIntervals = 3;
  static constexpr std::size_t kRecentIntervals = 16;

  // `time_s` if plausible after the frames judged before, else NaN.
  double Judge(frame_id_t index, double time_s);

  // Frames judged implausible so far.
  std::size_t implausible() const { return implausible_; }

 private:
  struct Stamp {
    frame_id_t index;
    double time_s;
  };
  bool PlausibleAfter(const Stamp& before, const Stamp& now) const;
  void Accept(const Stamp& before, const Stamp& now);

  std::optional<Stamp> last_;     // the last plausible frame
  std::optional<Stamp> pending_;  // the last implausible one, a possible new clock
  std::deque<double> intervals_;  // recent plausible intervals per index step
  std::size_t implausible_ = 0;
};

}  // namespace livealign
