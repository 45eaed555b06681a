#pragma once
// ChannelAverages: the shift-corrected averages of the channels of a
// several-detector series (HAADF with ABF/BF, DF...) that are NOT registered
// on. The registration channel's frames go through RegistrationEngine; every
// other channel is averaged with the shifts the engine measured for the same
// frame index, so all channels are corrected identically (docs/protocol.md,
// "Channels").
//
// One ShiftedAverager per channel, driven through its public API only. As the
// engine revises earlier shifts, Follow() re-resamples the frames whose shift
// moved: while frames stream in, only those beyond `live_tolerance_px`, at
// most `live_budget` per update (largest move first), as the engine does for
// its own average; at the series end (final), every frame at its exact shift,
// so the final averages equal a fresh average of the frames at the final
// shifts (what `livealign apply` computes from shifts.csv). The registration
// channel's own average (RegistrationEngine's) keeps the averager's default
// tolerance and may lag its final shifts by up to that (0.01 px).
//
// Every channel sees the same sequence of SetShift calls, so their applied
// shifts never differ between channels.
//
// Frame store: when a FrameStore is given, every frame added is also Put into
// it under (index, channel name), so an averager that reads its frames back
// from the store (rather than keeping them) finds them there.
//
// Not synchronised: one thread adds and follows; const methods may be called
// concurrently with each other.
//
//   ChannelAverages abf({"ABF"});
//   const RegistrationResult r = engine.AddFrame(std::move(haadf));
//   abf.AddFrames(std::move(abf_frames), r.frames.back());
//   abf.Follow(r.frames, /*final=*/false);
//   AverageImage abf_average = abf.Average("ABF");

#include <cstddef>
#include <string>
#include <vector>

#include "core/average_image.hpp"
#include "core/averager.hpp"
#include "core/frame.hpp"
#include "core/frame_store.hpp"
#include "core/registration_result.hpp"

namespace livealign {

class ChannelAverages {
 public:
  struct Options {
    // Live re-resampling rule; the defaults are the engine's own, so an extra
    // channel lags its shifts exactly as the registration channel's average.
    double live_tolerance_px = 0.05;
    int live_budget = 1;  // frames per channel per update; < 0: no limit
    // Follow() decides which frames move, so the averagers re-resample on
    // every SetShift (tolerance 0): the final averages are then exact at the
    // final shifts, as a fresh average of the frames is.
    ShiftedAverager::Options averager = ExactAverager();

    static ShiftedAverager::Options ExactAverager() {
      ShiftedAverager::Options options;
      options.reresample_tolerance_px = 0;
      return options;
    }

    bool Check(std::string* error) const;
  };

  // `channels`: the names of the channels averaged here (distinct, non-empty).
  // `store` (may be null) receives a copy of every frame; it must outlive this.
  // Throws std::invalid_argument for bad names or options.
  ChannelAverages(std::vector<std::string> channels, Options options, FrameStore* store = nullptr);
  explicit ChannelAverages(std::vector<std::string> channels);

  const std::vector<std::string>& channels() const { return channels_; }
  int num_frames() const;

  // Adds the next frame (index num_frames()) of every channel, in channels()
  // order, at `state`'s shift; a flagged frame is kept but left out. Throws
  // std::invalid_argument (nothing changed) for a wrong number of frames, a
  // shape mismatch, an empty frame or a non-finite shift.
  void AddFrames(std::vector<Frame> frames, const FrameState& state);

  // Follows the engine's current shifts and flags: states[i] is frame i's
  // (states.size() must equal num_frames()). Returns the number of frames
  // re-resampled (per channel).
  int Follow(const std::vector<FrameState>& states, bool final);

  // The average of one channel. Throws std::out_of_range for an unknown name.
  AverageImage Average(const std::string& channel) const;
  // Frame i of one channel, as added. Throws std::out_of_range for an unknown
  // name or index.
  FrameView frame(const std::string& channel, int i) const;

  // Bytes of pixel data held by the averagers.
  std::size_t MemoryBytes() const;

 private:
  std::vector<std::string> channels_;
  Options options_;
  FrameStore* store_;
  std::vector<ShiftedAverager> averagers_;  // one per channel

  const ShiftedAverager& AveragerOf(const std::string& channel) const;
};

}  // namespace livealign
