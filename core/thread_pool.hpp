#pragma once
// A fixed pool of worker threads with ParallelFor, for spreading pair
// correlations across cores.
//
// Thread-safety: ParallelFor may be called from one thread at a time (it is
// guarded by a mutex, so concurrent callers serialise rather than interleave).
//
//   ThreadPool pool(2);
//   pool.ParallelFor(n, [&](int index, int worker) { Work(index, scratch[worker]); });
//
// `worker` is in [0, NumWorkers()) and unique among concurrently running
// calls, so per-worker scratch (an FFTW plan and buffers) needs no lock.

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace livealign {

class ThreadPool {
 public:
  // num_threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int NumWorkers() const { return static_cast<int>(threads_.size()) + 1; }

  // Runs fn(index, worker) for index in [0, count), the calling thread taking
  // part as worker 0. Returns when all are done. The first exception thrown by
  // fn is rethrown here after the others finish.
  void ParallelFor(int count, const std::function<void(int index, int worker)>& fn);

  // How many workers (the caller included, so at least 1) take part in the
  // ParallelFor calls that start after this; 0 (the default) or more than
  // NumWorkers() means all. The others stay idle, leaving their cores to
  // threads outside the pool. `worker` indices stay below the limit.
  void SetWorkerLimit(int limit);
  int WorkerLimit() const;

 private:
  void WorkerLoop(int worker);
  void RunItems(int worker);

  std::mutex call_mutex_;  // serialises ParallelFor callers
  mutable std::mutex mutex_;  // guards every member below
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const std::function<void(int, int)>* fn_ = nullptr;
  int count_ = 0;
  int next_ = 0;
  int active_ = 0;
  int worker_limit_ = 0;      // SetWorkerLimit's value
  int generation_limit_ = 0;  // the workers taking part in the current call
  long generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace livealign
