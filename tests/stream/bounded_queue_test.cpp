#include "stream/bounded_queue.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

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

TEST_CASE("bounded queue Push waits for room and resumes after a Pop", "[stream][bounded_queue]") {
  BoundedQueue<int> queue(10, 0);
  REQUIRE(queue.Push(1, 10));
  std::thread producer([&] { CHECK(queue.Push(2, 10)); });
  int item = 0;
  REQUIRE(queue.Pop(&item));  // makes room; the producer then completes
  CHECK(item == 1);
  REQUIRE(queue.Pop(&item));  // waits for the producer's item
  CHECK(item == 2);
  producer.join();
  CHECK(queue.HighWaterBytes() == 10);
}

TEST_CASE("bounded queue Stop releases waiting producers and consumers", "[stream][bounded_queue]") {
  BoundedQueue<int> queue(10, 0);
  REQUIRE(queue.Push(1, 10));
  bool push_result = true;
  std::thread producer([&] { push_result = queue.Push(2, 10); });
  queue.Stop();
  producer.join();
  CHECK_FALSE(push_result);
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
  bool pop_result = true;
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
  for (int p = 0; p < 3; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) REQUIRE(queue.Push({p, i}, 8));
    });
  }
  std::vector<int> next(3, 0);
  std::pair<int, int> item;
  for (int n = 0; n < 3 * kPerProducer; ++n) {
    REQUIRE(queue.Pop(&item));
    REQUIRE(item.second == next[item.first]);
    ++next[item.first];
  }
  for (auto& t : producers) t.join();
  CHECK(queue.HighWaterBytes() <= 64);
  CHECK(next == std::vector<int>{kPerProducer, kPerProducer, kPerProducer});
}

}  // namespace
}  // namespace livealign
