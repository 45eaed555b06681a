#pragma once
// ReadAhead<T>: runs a producer on a thread of its own, a bounded number of
// items ahead of the consumer. Why: `register` reads and prepares frame k + 1
// (file read, NaN check, forward FFT: pixels-only work) while the engine adds
// frame k, instead of reading the whole stack first and then leaving the
// second core idle whenever an update is serial.
//
//   ReadAhead<Frame> ahead([&] { return reader.Next(); }, /*depth=*/2);
//   while (std::optional<Frame> f = ahead.Next()) ...
//
// Items arrive in production order. After the producer returns std::nullopt,
// Next() returns std::nullopt for good; when the producer throws, Next()
// returns the items produced before and then rethrows. The destructor stops
// the producer (after its current item) and joins it. Next() is for one
// consumer thread.

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

namespace livealign {

template <class T>
class ReadAhead {
 public:
  // Requires depth >= 1: at most `depth` produced items wait for Next().
  ReadAhead(std::function<std::optional<T>()> produce, int depth)
      : produce_(std::move(produce)), depth_(depth) {
    if (depth_ < 1) throw std::invalid_argument("ReadAhead: depth must be at least 1");
    thread_ = std::thread([this] { Run(); });
  }
  ~ReadAhead() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    space_.notify_all();
    thread_.join();
  }
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  std::optional<T> Next() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [this] { return !items_.empty() || done_; });
    if (!items_.empty()) {
      T item = std::move(items_.front());
      items_.pop_front();
      lock.unlock();
      space_.notify_one();
      return item;
    }
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return std::nullopt;
  }

 private:
  struct Produced {
    std::optional<T> item;
    std::exception_ptr error;
  };
  // The item or the exception, from one return. Why not `item = produce_()`
  // inside a try in Run's loop: GCC 12.2 at -O1 and above then kept `item`
  // engaged after produce_() threw (a 30-line reproduction; the tests catch
  // it under TSan), so a read error came out as a garbage frame.
  Produced Produce() {
    try {
      return Produced{produce_(), nullptr};
    } catch (...) {
      return Produced{std::nullopt, std::current_exception()};
    }
  }

  void Run() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        space_.wait(lock, [this] { return static_cast<int>(items_.size()) < depth_ || stopping_; });
        if (stopping_) break;
      }
      Produced produced = Produce();
      std::lock_guard<std::mutex> lock(mutex_);
      if (!produced.item) {
        error_ = produced.error;
        break;
      }
      items_.push_back(std::move(*produced.item));
      ready_.notify_one();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
    ready_.notify_all();
  }

  std::function<std::optional<T>()> produce_;
  const int depth_;
  std::mutex mutex_;
  std::condition_variable ready_;  // an item, or done_
  std::condition_variable space_;  // room for an item, or stopping_
  std::deque<T> items_;
  bool done_ = false;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace livealign
