#include "core/thread_pool.hpp"

#include <algorithm>
#include <exception>

namespace livealign {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) {
    num_threads = static_cast<int>(std::thread::hardware_concurrency());
    if (num_threads <= 0) num_threads = 1;
  }
  for (int w = 1; w < num_threads; ++w) {
    threads_.emplace_back([this, w] { WorkerLoop(w); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::RunItems(int worker) {
  for (;;) {
    int index;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_ >= count_) return;
      index = next_++;
    }
    try {
      (*fn_)(index, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_ = count_;  // stop handing out work
    }
  }
}

void ThreadPool::WorkerLoop(int worker) {
  long seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      if (worker >= generation_limit_) continue;  // sits this call out
      ++active_;
    }
    RunItems(worker);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --active_;
    }
    work_done_.notify_all();
  }
}

void ThreadPool::ParallelFor(int count, const std::function<void(int, int)>& fn) {
  if (count <= 0) return;
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    count_ = count;
    next_ = 0;
    error_ = nullptr;
    generation_limit_ = worker_limit_ <= 0 ? NumWorkers() : std::min(worker_limit_, NumWorkers());
    ++generation_;
  }
  work_ready_.notify_all();
  RunItems(0);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    // Workers that woke for this generation finish their items; one that has
    // not woken yet will find next_ == count_ and do nothing.
    work_done_.wait(lock, [&] { return active_ == 0 && next_ >= count_; });
    fn_ = nullptr;
    error = error_;
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::SetWorkerLimit(int limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  worker_limit_ = limit;
}

int ThreadPool::WorkerLimit() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return worker_limit_;
}

}  // namespace livealign
