#include "core/thread_pool.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace livealign {
namespace {

TEST_CASE("parallel for visits every index exactly once", "[core][thread_pool]") {
  ThreadPool pool(3);
  for (int round = 0; round < 50; ++round) {
    // Recorded on the workers, asserted here: Catch2 v2 assertions belong to
    // the test's own thread.
    std::vector<std::atomic<int>> visits(97);
    std::vector<int> worker_of(97, -1);  // each index is written by one task only
    pool.ParallelFor(97, [&](int index, int worker) {
      worker_of[index] = worker;
      visits[index]++;
    });
    for (int index = 0; index < 97; ++index) {
      CAPTURE(round, index);
      REQUIRE(visits[index].load() == 1);
      REQUIRE(worker_of[index] >= 0);
      REQUIRE(worker_of[index] < pool.NumWorkers());
    }
  }
}

TEST_CASE("a worker limit keeps the other workers out of later calls", "[core][thread_pool]") {
  ThreadPool pool(3);
  REQUIRE(pool.WorkerLimit() == 0);
  const std::thread::id caller = std::this_thread::get_id();
  for (const int limit : {1, 2, 0, 5}) {
    pool.SetWorkerLimit(limit);
    const int allowed = limit <= 0 || limit > pool.NumWorkers() ? pool.NumWorkers() : limit;
    for (int round = 0; round < 30; ++round) {
      std::vector<std::atomic<int>> visits(61);
      std::vector<int> worker_of(61, -1);
      std::vector<char> on_caller(61, 0);
      pool.ParallelFor(61, [&](int index, int worker) {
        worker_of[index] = worker;
        on_caller[index] = std::this_thread::get_id() == caller;
        visits[index]++;
      });
      for (int index = 0; index < 61; ++index) {
        CAPTURE(limit, round, index);
        REQUIRE(visits[index].load() == 1);
        REQUIRE(worker_of[index] >= 0);
        REQUIRE(worker_of[index] < allowed);
        // Worker 0 is the calling thread, so a limit of 1 runs everything inline.
        REQUIRE(static_cast<bool>(on_caller[index]) == (worker_of[index] == 0));
      }
    }
  }
}

TEST_CASE("an exception in a task reaches the caller and the pool stays usable",
          "[core][thread_pool]") {
  ThreadPool pool(2);
  CHECK_THROWS_AS(pool.ParallelFor(10, [](int index, int) {
    if (index == 3) throw std::runtime_error("boom");
  }), std::runtime_error);
  std::atomic<int> count{0};
  pool.ParallelFor(10, [&](int, int) { count++; });
  CHECK(count.load() == 10);
}

}  // namespace
}  // namespace livealign
