#include "core/thread_pool.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace livealign {
namespace {

TEST_CASE("parallel for visits every index exactly once", "[core][thread_pool]") {
  ThreadPool pool(3);
  for (int round = 0; round < 50; ++round) {
    std::vector<std::atomic<int>> visits(97);
    pool.ParallelFor(97, [&](int index, int worker) {
      REQUIRE(worker >= 0);
      REQUIRE(worker < pool.NumWorkers());
      visits[index]++;
    });
    for (auto& v : visits) REQUIRE(v.load() == 1);
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
