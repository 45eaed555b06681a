#include "stream/bounded_queue.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "stream_test_util.hpp"

namespace livealign {
namespace {

TEST_CASE("bounded queue is FIFO and tracks bytes and high water", "[stream][bounded_queue]") {
  BoundedQueue<int> queue(100, 0);
  REQUIRE(queue.TryPush(1, 40));
  REQUIRE(queue.TryPush(2, 40));
  CHECK(queue.Bytes() == 80);
  CHECK(queue.Size() == 2);
  int item = 0;
  REQUIRE(queue.Pop(&item));
  CHECK(item == 1);
  REQUIRE(queue.TryPush(3, 50));
  CHECK(queue.HighWaterBytes() == 90);
  REQUIRE(queue.Pop(&item));
  CHECK(item == 2);
  REQUIRE(queue.Pop(&item));
  CHECK(item == 3);
  CHECK(queue.Bytes() == 0);
}

TEST_CASE("bounded queue TryPush refuses when full by bytes or items", "[stream][bounded_queue]") {
  SECTION("bytes") {
    BoundedQueue<int> queue(100, 0);
    REQUIRE(queue.TryPush(1, 60));
    CHECK_FALSE(queue.TryPush(2, 60));
    CHECK(queue.TryPush(3, 40));
    CHECK(queue.Size() == 2);
  }
  SECTION("items") {
    BoundedQueue<int> queue(0, 2);
    REQUIRE(queue.TryPush(1, 1000));
    REQUIRE(queue.TryPush(2, 1000));
    CHECK_FALSE(queue.TryPush(3, 0));
  }
  SECTION("an oversized item is accepted into an empty queue") {
    BoundedQueue<int> queue(10, 0);
    CHECK(queue.TryPush(1, 1000));
    CHECK_FALSE(queue.TryPush(2, 1));
  }
}

using testing::WaitForBlockedProducers;

TEST_CASE("bounded queue Push waits for room and resumes after a Pop", "[stream][bounded_queue]") {
  BoundedQueue<int> queue(10, 0);
  REQUIRE(queue.Push(1, 10));
  CHECK(queue.WaitingProducers() == 0);
  std::atomic<int> push_result{-1};  // -1 while Push has not returned
  std::thread producer([&] { push_result = queue.Push(2, 10) ? 1 : 0; });
  // The producer is blocked in Push: the queue has no room for its item.
  const bool blocked = WaitForBlockedProducers(queue, 1);
  CHECK(blocked);
  CHECK(push_result.load() == -1);
  CHECK(queue.Size() == 1);
  int item = 0;
  REQUIRE(queue.Pop(&item));  // makes room; the producer then completes
  CHECK(item == 1);
  REQUIRE(queue.Pop(&item));  // waits for the producer's item
  CHECK(item == 2);
  producer.join();
  CHECK(push_result.load() == 1);
  CHECK(queue.WaitingProducers() == 0);
  CHECK(queue.HighWaterBytes() == 10);
}

TEST_CASE("bounded queue Stop releases waiting producers and consumers", "[stream][bounded_queue]") {
  BoundedQueue<int> queue(10, 0);
  REQUIRE(queue.Push(1, 10));
  std::atomic<int> push_result{-1};
  std::thread producer([&] { push_result = queue.Push(2, 10) ? 1 : 0; });
  // Stop only once the producer is known to wait, so the test shows Stop
  // releasing it (not a Push that merely ran after Stop).
  const bool blocked = WaitForBlockedProducers(queue, 1);
  CHECK(blocked);
  CHECK(push_result.load() == -1);
  queue.Stop();
  producer.join();
  CHECK(push_result.load() == 0);
  CHECK(queue.WaitingProducers() == 0);
  int item = 0;
  CHECK_FALSE(queue.Pop(&item));  // stopped: queued items are discarded
  CHECK(queue.Finished());
  CHECK_FALSE(queue.TryPush(3, 1));
}

TEST_CASE("bounded queue Close drains queued items then ends", "[stream][bounded_queue]") {
  BoundedQueue<std::string> queue(0, 0);
  REQUIRE(queue.Push("a", 1));
  REQUIRE(queue.Push("b", 1));
  queue.Close();
  CHECK_FALSE(queue.Push("c", 1));
  std::string item;
  REQUIRE(queue.Pop(&item));
  CHECK(item == "a");
  REQUIRE(queue.Pop(&item));
  CHECK(item == "b");
  CHECK_FALSE(queue.Pop(&item));
  CHECK(queue.Finished());
}

TEST_CASE("bounded queue waiting consumer wakes on Close", "[stream][bounded_queue]") {
  BoundedQueue<int> queue(0, 0);
  std::atomic<bool> pop_result{true};
  std::thread consumer([&] {
    int item = 0;
    pop_result = queue.Pop(&item);
  });
  queue.Close();
  consumer.join();
  CHECK_FALSE(pop_result);
}

TEST_CASE("bounded queue delivers every item from several producers in order per producer",
          "[stream][bounded_queue]") {
  BoundedQueue<std::pair<int, int>> queue(64, 0);
  constexpr int kPerProducer = 2000;
  std::vector<std::thread> producers;
  // Counted on the producers, asserted here: Catch2 v2 assertions belong to
  // the test's own thread.
  std::atomic<int> refused_pushes{0};
  for (int p = 0; p < 3; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        if (!queue.Push({p, i}, 8)) ++refused_pushes;
      }
    });
  }
  std::vector<int> next(3, 0);
  std::pair<int, int> item;
  for (int n = 0; n < 3 * kPerProducer; ++n) {
    REQUIRE(queue.Pop(&item));
    CHECK(item.second == next[item.first]);  // CHECK: keeps popping, so producers finish
    ++next[item.first];
  }
  for (auto& t : producers) t.join();
  CHECK(refused_pushes.load() == 0);
  CHECK(queue.HighWaterBytes() <= 64);
  CHECK(next == std::vector<int>{kPerProducer, kPerProducer, kPerProducer});
}

}  // namespace
}  // namespace livealign
