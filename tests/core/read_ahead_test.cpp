#include "core/read_ahead.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>

namespace livealign {

TEST_CASE("read-ahead delivers every item in order, then the end for good", "[core][read_ahead]") {
  int next = 0;
  ReadAhead<int> ahead([&]() -> std::optional<int> {
    if (next == 100) return std::nullopt;
    return next++;
  }, /*depth=*/3);
  for (int i = 0; i < 100; ++i) {
    const std::optional<int> item = ahead.Next();
    REQUIRE(item);
    CHECK(*item == i);
  }
  CHECK_FALSE(ahead.Next());
  CHECK_FALSE(ahead.Next());
}

TEST_CASE("read-ahead stays at most depth items ahead of the consumer", "[core][read_ahead]") {
  const int depth = 2;
  std::mutex mutex;
  std::condition_variable changed;
  int produced = 0;
  int consumed = 0;
  int max_lead = 0;
  ReadAhead<int> ahead([&]() -> std::optional<int> {
    std::lock_guard<std::mutex> lock(mutex);
    if (produced == 20) return std::nullopt;
    max_lead = std::max(max_lead, produced - consumed);
    ++produced;
    changed.notify_all();
    return produced - 1;
  }, depth);
  {
    // Before anything is consumed the producer fills the queue and stops.
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return produced == depth; });
  }
  for (int i = 0; i < 20; ++i) {
    REQUIRE(ahead.Next() == i);
    std::lock_guard<std::mutex> lock(mutex);
    ++consumed;
  }
  CHECK_FALSE(ahead.Next());
  // An item is produced only while fewer than `depth` wait, and the one being
  // consumed has left the queue: the producer's lead is at most depth.
  CHECK(max_lead <= depth);
  CHECK(max_lead >= 1);
}

TEST_CASE("read-ahead hands over the items before a producer's exception, then rethrows it",
          "[core][read_ahead]") {
  int next = 0;
  ReadAhead<int> ahead([&]() -> std::optional<int> {
    if (next == 3) throw std::runtime_error("frame 3 is corrupt");
    return next++;
  }, /*depth=*/8);
  for (int i = 0; i < 3; ++i) REQUIRE(ahead.Next() == i);
  CHECK_THROWS_WITH(ahead.Next(), "frame 3 is corrupt");
  CHECK_FALSE(ahead.Next());
}

TEST_CASE("read-ahead destroyed early stops a producer that waits for room", "[core][read_ahead]") {
  std::atomic<int> produced{0};
  {
    ReadAhead<std::string> ahead([&]() -> std::optional<std::string> {
      return std::to_string(produced++);  // endless
    }, /*depth=*/1);
    REQUIRE(ahead.Next() == std::string("0"));
  }  // the producer is blocked on a full queue; the destructor must not hang
  CHECK(produced.load() >= 1);
  CHECK(produced.load() <= 3);
  CHECK_THROWS_AS(ReadAhead<int>([] { return std::optional<int>(); }, 0), std::invalid_argument);
}

}  // namespace livealign
