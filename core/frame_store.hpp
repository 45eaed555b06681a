#pragma once
// FrameStore: where the frames of one series live once they have been
// accepted, so that the engine need not keep them all in RAM. The averager
// reads a frame back when that frame's shift has moved enough to be
// re-resampled; everything else the engine needs per frame (its band-cropped
// spectrum, its shift) stays in memory.
//
// core/ only states the interface and an in-memory implementation;
// adapters/frame_journal implements it on disk as an append-only, checksummed
// journal that is also what a restarted daemon resumes from.
//
// Frames are identified by their position in the series (0, 1, 2, ...) and by
// a channel name ("" for a single-channel series). Put() is called once per
// accepted frame and channel, in increasing index order; putting an index that
// is already stored is a no-op (a resumed series replays what the store holds).
//
// Thread-safety: implementations must allow concurrent Get() calls from
// several threads; Put() is called from one thread, never concurrently with
// itself.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/frame.hpp"

namespace livealign {

class FrameStore {
 public:
  virtual ~FrameStore() = default;

  // Stores a copy of `frame` under (index, channel). Throws on an I/O failure
  // (the frame then does not count as accepted).
  virtual void Put(frame_id_t index, const std::string& channel, FrameView frame,
                   double timestamp_s) = 0;

  // The frame stored under (index, channel), with its header (index,
  // timestamp, shape) set. Throws std::out_of_range when there is none and
  // std::runtime_error when it cannot be read back.
  virtual Frame Get(frame_id_t index, const std::string& channel = "") const = 0;
  // Put and Get for a frame held by shared pointer: Put(frame's view, its
  // timestamp) and Get wrapped, unless the store can keep and hand out the
  // pointer itself (MemoryFrameStore), which saves a copy of every frame.
  virtual void PutShared(frame_id_t index, const std::string& channel,
                         std::shared_ptr<const Frame> frame) {
    Put(index, channel, frame->view(), frame->header().timestamp_s);
  }
  virtual std::shared_ptr<const Frame> GetShared(frame_id_t index,
                                                 const std::string& channel = "") const {
    return std::make_shared<const Frame>(Get(index, channel));
  }

  // Number of distinct indices stored for `channel`.
  virtual frame_id_t Count(const std::string& channel = "") const = 0;

  // Bytes this store holds in RAM (caches included), for the memory figures.
  virtual std::size_t bytes_in_memory() const = 0;
};

// Keeps every frame in RAM: for offline registration of a stack that already
// fits in memory, and for tests.
class MemoryFrameStore final : public FrameStore {
 public:
  void Put(frame_id_t index, const std::string& channel, FrameView frame,
           double timestamp_s) override {
    FrameHeader header;
    header.index = index;
    header.timestamp_s = timestamp_s;
    header.shape = frame.shape();
    std::vector<float> pixels(frame.data(), frame.data() + frame.shape().Pixels());
    Keep(channel, std::make_shared<const Frame>(frame.shape(), std::move(pixels), header));
  }

  // Keeps the pointer itself when the frame's header already names `index`
  // (the frame is immutable behind it); otherwise a copy with that index.
  void PutShared(frame_id_t index, const std::string& channel,
                 std::shared_ptr<const Frame> frame) override {
    if (frame->header().index != index) {
      Put(index, channel, frame->view(), frame->header().timestamp_s);
      return;
    }
    Keep(channel, std::move(frame));
  }

  Frame Get(frame_id_t index, const std::string& channel = "") const override {
    return Find(index, channel)->Clone();
  }

  std::shared_ptr<const Frame> GetShared(frame_id_t index,
                                         const std::string& channel = "") const override {
    return Find(index, channel);
  }

  frame_id_t Count(const std::string& channel = "") const override {
    std::lock_guard<std::mutex> lock(mutex_);
    frame_id_t n = 0;
    for (const auto& entry : frames_) n += entry.first.first == channel ? 1 : 0;
    return n;
  }

  std::size_t bytes_in_memory() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_;
  }

 private:
  // Stores `frame` under (channel, its header's index) unless a frame is
  // there already (the first one put stays).
  void Keep(const std::string& channel, std::shared_ptr<const Frame> frame) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::size_t bytes = frame->pixels().size() * sizeof(float);
    if (frames_.emplace(std::make_pair(channel, frame->header().index), std::move(frame)).second) {
      bytes_ += bytes;
    }
  }

  std::shared_ptr<const Frame> Find(frame_id_t index, const std::string& channel) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = frames_.find(std::make_pair(channel, index));
    if (it == frames_.end()) {
      throw std::out_of_range("MemoryFrameStore: no frame " + std::to_string(index) +
                              (channel.empty() ? "" : " of channel " + channel));
    }
    return it->second;
  }

  mutable std::mutex mutex_;  // guards frames_ and bytes_
  std::map<std::pair<std::string, frame_id_t>, std::shared_ptr<const Frame>> frames_;
  std::size_t bytes_ = 0;
};

}  // namespace livealign
