#pragma once
// A FIFO queue between two pipeline stages, bounded in bytes and in items
// (after COLMAP util/threading.h JobQueue and Ceres concurrent_queue.h).
// Because it is bounded, overload is explicit: Push waits for room (PULL
// back-pressure), TryPush refuses and the caller counts a loss (SUB).
//
// Each item carries a cost in bytes given by the producer. An item larger than
// the whole byte capacity is still accepted when the queue is empty, so a
// single oversized item can never dead-lock the pipeline.
//
// States: running -> closed (Close(): no more pushes, Pop drains what is
// queued, then returns false) or stopped (Stop(): Push and Pop return false at
// once, queued items are discarded). Both wake every waiter.
//
// Thread-safe: any number of producers and consumers.
//
//   BoundedQueue<Job> queue(/*max_bytes=*/64 << 20, /*max_items=*/0);
//   producer: if (!queue.Push(std::move(job), job.bytes)) return;  // stopped
//   consumer: Job job; while (queue.Pop(&job)) Process(job);

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <utility>

namespace livealign {

template <typename T>
class BoundedQueue {
 public:
  // max_bytes / max_items of 0 mean "no bound" on that measure.
  BoundedQueue(std::size_t max_bytes, std::size_t max_items)
      : max_bytes_(max_bytes), max_items_(max_items) {}
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Waits for room; false (item dropped) once the queue is closed or stopped.
  // `max_items_ahead` tightens the bound for this push alone: it also waits
  // until at most that many items are queued ahead of it (a bound in time
  // that the caller has turned into items; an empty queue always has room).
  bool Push(T item, std::size_t bytes, std::size_t max_items_ahead = static_cast<std::size_t>(-1)) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto room = [&] { return HasRoomUnlocked(bytes) && items_.size() <= max_items_ahead; };
    if (running_ && !room()) {
      ++waiting_producers_;
      not_full_.wait(lock, [&] { return !running_ || room(); });
      --waiting_producers_;
    }
    if (!running_) return false;
    PushUnlocked(std::move(item), bytes);
    return true;
  }

  // Never waits: false when full, closed or stopped (the item is dropped).
  bool TryPush(T item, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!running_ || !HasRoomUnlocked(bytes)) return false;
    PushUnlocked(std::move(item), bytes);
    return true;
  }

  // Waits for an item. False when stopped, or closed and drained.
  bool Pop(T* item) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait(lock, [&] { return stopped_ || !items_.empty() || !running_; });
    return PopUnlocked(item);
  }

  // As Pop, but gives up after `timeout` (returns false; check Finished()).
  template <typename Rep, typename Period>
  bool PopFor(T* item, std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait_for(lock, timeout,
                        [&] { return stopped_ || !items_.empty() || !running_; });
    return PopUnlocked(item);
  }

  // No more pushes; consumers drain what is queued.
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      running_ = false;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  // No more pushes or pops; queued items are discarded.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      running_ = false;
      stopped_ = true;
      items_.clear();
      bytes_ = 0;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  // True once Pop can never again return an item.
  bool Finished() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopped_ || (!running_ && items_.empty());
  }

  std::size_t Size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size();
  }
  std::size_t Bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_;
  }
  // Largest byte total ever queued at once.
  std::size_t HighWaterBytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return high_water_bytes_;
  }
  std::size_t max_bytes() const { return max_bytes_; }
  // Producers blocked in Push right now, waiting for room (observable proof
  // of back-pressure, for status and tests).
  std::size_t WaitingProducers() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return waiting_producers_;
  }

 private:
  struct Entry {
    T item;
    std::size_t bytes;
  };

  bool HasRoomUnlocked(std::size_t bytes) const {
    if (items_.empty()) return true;
    if (max_items_ > 0 && items_.size() >= max_items_) return false;
    return max_bytes_ == 0 || bytes_ + bytes <= max_bytes_;
  }

  void PushUnlocked(T item, std::size_t bytes) {
    items_.push_back(Entry{std::move(item), bytes});
    bytes_ += bytes;
    if (bytes_ > high_water_bytes_) high_water_bytes_ = bytes_;
    not_empty_.notify_one();
  }

  bool PopUnlocked(T* item) {
    if (stopped_ || items_.empty()) return false;
    *item = std::move(items_.front().item);
    bytes_ -= items_.front().bytes;
    items_.pop_front();
    not_full_.notify_all();  // producers wait for different sizes
    return true;
  }

  const std::size_t max_bytes_;
  const std::size_t max_items_;
  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<Entry> items_;
  std::size_t bytes_ = 0;
  std::size_t high_water_bytes_ = 0;
  std::size_t waiting_producers_ = 0;  // inside Push's wait
  bool running_ = true;   // false after Close() or Stop()
  bool stopped_ = false;  // true after Stop()
};

}  // namespace livealign
