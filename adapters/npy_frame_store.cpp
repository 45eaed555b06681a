#include "adapters/npy_frame_store.hpp"

#include <stdexcept>

namespace livealign {

NpyFrameStore::NpyFrameStore(const std::string& path) : reader_(path) {
  const std::size_t frames = static_cast<std::size_t>(reader_.header().frame_count());
  accepted_.assign(frames, 0);
  timestamps_s_.assign(frames, 0.0);
}

void NpyFrameStore::Put(frame_id_t index, const std::string& channel, FrameView frame,
                        double timestamp_s) {
  if (!channel.empty()) {
    throw std::invalid_argument("NpyFrameStore: one channel only, not \"" + channel + "\"");
  }
  if (index < 0 || index >= reader_.header().frame_count()) {
    throw std::invalid_argument("NpyFrameStore: frame " + std::to_string(index) +
                                " is not in the file (it has " +
                                std::to_string(reader_.header().frame_count()) + ")");
  }
  if (frame.shape() != reader_.header().frame_shape()) {
    throw std::invalid_argument("NpyFrameStore: frame shape does not match the file's");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const std::size_t i = static_cast<std::size_t>(index);
  if (accepted_[i]) return;  // the first Put stays, as in every store
  accepted_[i] = 1;
  timestamps_s_[i] = timestamp_s;
  ++count_;
}

Frame NpyFrameStore::Get(frame_id_t index, const std::string& channel) const {
  double timestamp_s = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const bool put = channel.empty() && index >= 0 &&
                     index < static_cast<frame_id_t>(accepted_.size()) &&
                     accepted_[static_cast<std::size_t>(index)];
    if (!put) {
      throw std::out_of_range("NpyFrameStore: no frame " + std::to_string(index) +
                              (channel.empty() ? "" : " of channel " + channel));
    }
    timestamp_s = timestamps_s_[static_cast<std::size_t>(index)];
  }
  Frame frame = reader_.ReadAt(static_cast<int>(index));
  frame.mutable_header().timestamp_s = timestamp_s;
  return frame;
}

frame_id_t NpyFrameStore::Count(const std::string& channel) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return channel.empty() ? count_ : 0;
}

std::size_t NpyFrameStore::bytes_in_memory() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return accepted_.size() * (sizeof(char) + sizeof(double));
}

}  // namespace livealign
