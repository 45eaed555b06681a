#include "core/channel_averages.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace livealign {

bool ChannelAverages::Options::Check(std::string* error) const {
  auto fail = [&](const std::string& message) {
    if (error != nullptr) *error = message;
    return false;
  };
  if (!(live_tolerance_px >= 0) || !std::isfinite(live_tolerance_px)) {
    return fail("ChannelAverages: live_tolerance_px must be finite and >= 0");
  }
  return averager.Check(error);
}

ChannelAverages::ChannelAverages(std::vector<std::string> channels, Options options,
                                 FrameStore* store)
    : channels_(std::move(channels)), options_(options), store_(store) {
  std::string error;
  if (!options_.Check(&error)) throw std::invalid_argument(error);
  for (std::size_t c = 0; c < channels_.size(); ++c) {
    if (channels_[c].empty()) throw std::invalid_argument("ChannelAverages: empty channel name");
    if (std::find(channels_.begin(), channels_.begin() + static_cast<std::ptrdiff_t>(c),
                  channels_[c]) != channels_.begin() + static_cast<std::ptrdiff_t>(c)) {
      throw std::invalid_argument("ChannelAverages: channel '" + channels_[c] + "' named twice");
    }
    averagers_.emplace_back(options_.averager);
  }
}

ChannelAverages::ChannelAverages(std::vector<std::string> channels)
    : ChannelAverages(std::move(channels), Options{}, nullptr) {}

int ChannelAverages::num_frames() const {
  return averagers_.empty() ? 0 : averagers_.front().num_frames();
}

void ChannelAverages::AddFrames(std::vector<Frame> frames, const FrameState& state) {
  if (frames.size() != channels_.size()) {
    throw std::invalid_argument("ChannelAverages: " + std::to_string(frames.size()) +
                                " frames for " + std::to_string(channels_.size()) + " channels");
  }
  // Checked for every channel before any averager changes.
  for (std::size_t c = 0; c < frames.size(); ++c) {
    const Shape want = averagers_[c].num_frames() > 0 ? averagers_[c].shape() : frames[0].shape();
    if (frames[c].pixels().empty() || frames[c].shape() != want) {
      throw std::invalid_argument("ChannelAverages: frame of channel '" + channels_[c] +
                                  "' is empty or differs in shape from the others");
    }
  }
  if (!std::isfinite(state.shift.x) || !std::isfinite(state.shift.y)) {
    throw std::invalid_argument("ChannelAverages: non-finite shift");
  }
  const frame_id_t index = num_frames();
  if (store_ != nullptr) {
    for (std::size_t c = 0; c < frames.size(); ++c) {
      store_->Put(index, channels_[c], frames[c].view(), state.timestamp_s);
    }
  }
  for (std::size_t c = 0; c < frames.size(); ++c) {
    averagers_[c].AddFrame(std::move(frames[c]), state.shift, !state.flagged);
  }
}

int ChannelAverages::Follow(const std::vector<FrameState>& states, bool final) {
  if (averagers_.empty()) return 0;
  if (static_cast<int>(states.size()) != num_frames()) {
    throw std::invalid_argument("ChannelAverages::Follow: " + std::to_string(states.size()) +
                                " states for " + std::to_string(num_frames()) + " frames");
  }
  // Every averager has had the same calls, so the first one's applied shifts
  // stand for all of them.
  const ShiftedAverager& reference = averagers_.front();
  const double tolerance = final ? 0.0 : options_.live_tolerance_px;
  std::vector<std::pair<double, int>> moved;
  for (int i = 0; i < num_frames(); ++i) {
    const FrameState& s = states[static_cast<std::size_t>(i)];
    const double distance = (s.shift - reference.applied_shift(i)).Norm();
    if (!s.flagged != reference.included(i)) {
      moved.emplace_back(1e300, i);  // inclusion changes go first
    } else if (distance > tolerance) {
      moved.emplace_back(distance, i);
    }
  }
  const int budget = final ? -1 : options_.live_budget;
  if (budget >= 0 && static_cast<int>(moved.size()) > budget) {
    std::partial_sort(moved.begin(), moved.begin() + budget, moved.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    moved.resize(static_cast<std::size_t>(budget));
  }
  for (ShiftedAverager& averager : averagers_) {
    for (const auto& entry : moved) {
      const FrameState& s = states[static_cast<std::size_t>(entry.second)];
      averager.SetShift(entry.second, s.shift, !s.flagged);
    }
  }
  return static_cast<int>(moved.size());
}

const ShiftedAverager& ChannelAverages::AveragerOf(const std::string& channel) const {
  const auto it = std::find(channels_.begin(), channels_.end(), channel);
  if (it == channels_.end()) {
    throw std::out_of_range("ChannelAverages: no channel '" + channel + "'");
  }
  return averagers_[static_cast<std::size_t>(it - channels_.begin())];
}

AverageImage ChannelAverages::Average(const std::string& channel) const {
  return AveragerOf(channel).Average();
}

FrameView ChannelAverages::frame(const std::string& channel, int i) const {
  const ShiftedAverager& averager = AveragerOf(channel);
  if (i < 0 || i >= averager.num_frames()) {
    throw std::out_of_range("ChannelAverages: no frame " + std::to_string(i));
  }
  return averager.frame(i);
}

std::size_t ChannelAverages::MemoryBytes() const {
  std::size_t bytes = 0;
  for (const ShiftedAverager& averager : averagers_) bytes += averager.MemoryBytes();
  return bytes;
}

}  // namespace livealign
