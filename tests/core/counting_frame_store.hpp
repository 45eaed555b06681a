#pragma once
// A real FrameStore for tests: frames kept in RAM (MemoryFrameStore), every
// Get() counted, so a test can prove what was read back and how often.

#include <atomic>
#include <string>

#include "core/frame_store.hpp"

namespace livealign {

class CountingFrameStore final : public FrameStore {
 public:
  void Put(frame_id_t index, const std::string& channel, FrameView frame,
           double timestamp_s) override {
    ++puts_;
    inner_.Put(index, channel, frame, timestamp_s);
  }
  Frame Get(frame_id_t index, const std::string& channel = "") const override {
    ++gets_;
    return inner_.Get(index, channel);
  }
  frame_id_t Count(const std::string& channel = "") const override { return inner_.Count(channel); }
  std::size_t bytes_in_memory() const override { return inner_.bytes_in_memory(); }

  long gets() const { return gets_.load(); }
  long puts() const { return puts_.load(); }

 private:
  MemoryFrameStore inner_;
  mutable std::atomic<long> gets_{0};
  std::atomic<long> puts_{0};
};

}  // namespace livealign
