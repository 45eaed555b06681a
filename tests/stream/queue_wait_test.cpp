#include "stream/queue_wait.hpp"

#include <catch2/catch.hpp>

namespace livealign {

TEST_CASE("queue wait estimate is 0 before any frame: nothing is refused on a guess",
          "[stream][queue_wait]") {
  QueueWaitEstimate wait;
  CHECK(wait.SecondsPerFrame() == 0.0);
  CHECK(wait.ExpectedWaitS(1000) == 0.0);
}

TEST_CASE("queue wait estimate: frames ahead plus this one times the moving average",
          "[stream][queue_wait]") {
  QueueWaitEstimate wait;
  wait.RecordFrameSeconds(0.02);
  CHECK(wait.SecondsPerFrame() == Approx(0.02));
  CHECK(wait.ExpectedWaitS(0) == Approx(0.02));
  CHECK(wait.ExpectedWaitS(99) == Approx(2.0));
  // One slow update moves the average by its weight, not to itself.
  wait.RecordFrameSeconds(1.02);
  CHECK(wait.SecondsPerFrame() == Approx(0.02 + QueueWaitEstimate::kNewestWeight * 1.0));
  // A steady slower engine is followed.
  for (int i = 0; i < 200; ++i) wait.RecordFrameSeconds(0.05);
  CHECK(wait.SecondsPerFrame() == Approx(0.05).epsilon(1e-3));
  // Nonsense is ignored.
  wait.RecordFrameSeconds(-1.0);
  CHECK(wait.SecondsPerFrame() == Approx(0.05).epsilon(1e-3));
}

}  // namespace livealign
