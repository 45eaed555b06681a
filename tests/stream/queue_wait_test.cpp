#include "stream/queue_wait.hpp"

#include <catch2/catch.hpp>

namespace livealign {
namespace {

using Clock = QueueWaitEstimate::Clock;
using std::chrono::milliseconds;

}  // namespace

TEST_CASE("queue wait estimate is 0 before any frame: nothing is refused on a guess",
          "[stream][queue_wait]") {
  QueueWaitEstimate wait;
  CHECK(wait.SecondsPerFrame() == 0.0);
  CHECK(wait.ExpectedWaitS(1000) == 0.0);
  // One pop is no interval yet.
  wait.RecordPop(Clock::time_point{}, false);
  CHECK(wait.SecondsPerFrame() == 0.0);
}

TEST_CASE("queue wait estimate: frames ahead plus this one times the moving average",
          "[stream][queue_wait]") {
  QueueWaitEstimate wait;
  wait.RecordIntervalSeconds(0.02);
  CHECK(wait.SecondsPerFrame() == Approx(0.02));
  CHECK(wait.ExpectedWaitS(0) == Approx(0.02));
  CHECK(wait.ExpectedWaitS(99) == Approx(2.0));
  // One slow update moves the average by its weight, not to itself.
  wait.RecordIntervalSeconds(1.02);
  CHECK(wait.SecondsPerFrame() == Approx(0.02 + QueueWaitEstimate::kNewestWeight * 1.0));
  // A steady slower engine is followed.
  for (int i = 0; i < 200; ++i) wait.RecordIntervalSeconds(0.05);
  CHECK(wait.SecondsPerFrame() == Approx(0.05).epsilon(1e-3));
  // Nonsense is ignored.
  wait.RecordIntervalSeconds(-1.0);
  CHECK(wait.SecondsPerFrame() == Approx(0.05).epsilon(1e-3));
}

TEST_CASE("queue wait estimate: the interval between pops of a saturated queue, not the idle ones",
          "[stream][queue_wait]") {
  QueueWaitEstimate wait;
  const Clock::time_point t0{};
  // Pops 40 ms apart from a queue that was never empty: 40 ms per item, all of
  // it (the work of a turn and whatever else ran between two pops).
  for (int i = 0; i < 50; ++i) wait.RecordPop(t0 + milliseconds(40 * i), false);
  CHECK(wait.SecondsPerFrame() == Approx(0.040));
  // A pop that had to wait for an item: its 10 s were idle, not work.
  wait.RecordPop(t0 + milliseconds(40 * 49 + 10000), true);
  CHECK(wait.SecondsPerFrame() == Approx(0.040));
  // Saturated again: the next interval counts.
  wait.RecordPop(t0 + milliseconds(40 * 49 + 10000 + 140), false);
  CHECK(wait.SecondsPerFrame() == Approx(0.040 + QueueWaitEstimate::kNewestWeight * 0.100));
}

}  // namespace livealign
