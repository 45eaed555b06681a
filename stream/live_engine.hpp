#pragma once
// The per-series back end of the live daemon: the registration engine of one
// series together with the files it writes. The daemon talks to it only
// through this interface so that its threading and input validation can be
// tested without the numerical engine; the shipped daemon always uses
// MakeRegistrationLiveEngine (RegistrationEngine + WriteRegistrationOutputs +
// frames.tif).
//
// Not synchronised: the daemon's engine thread is the only caller.

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/average_image.hpp"
#include "core/engine_options.hpp"
#include "core/frame.hpp"
#include "core/frame_store.hpp"
#include "core/registration_engine.hpp"
#include "core/registration_result.hpp"

namespace livealign {

class LiveEngine {
 public:
  virtual ~LiveEngine() = default;
  // As RegistrationEngine: the result of the update, without its O(k^2)
  // parts (pairs, shift matrix); throws std::invalid_argument (engine
  // unchanged) on a shape mismatch or non-finite pixels.
  virtual RegistrationResult AddFrame(Frame frame) = 0;
  virtual RegistrationResult Finish() = 0;
  // The last update's result again, with the O(k^2) parts `request` asks for
  // built now (the daemon asks for the shift matrix when its `matrices`
  // message is due). A back end without them leaves them null (then no
  // `matrices` message is published).
  virtual RegistrationResult Snapshot(ResultRequest request) const = 0;
  virtual AverageImage Average() const = 0;
  // The image quality (FRC resolution, SNR, stop-when-good) of the running average (tens of ms at 512^2:
  // the daemon calls it rate-limited). The default, for back ends without
  // one, is an empty report (num_frames 0, frc_status "no_signal").
  virtual ImageQualityReport ImageQuality() const { return {}; }
  // Copy of the most recently added frame; the default is an empty Frame
  // (then no `frame` message is published).
  virtual Frame LatestFrame() const { return Frame(); }
  // Writes shifts.csv, average.tif, report.json ... into dir, each replaced
  // atomically; returns the paths written. Throws on an I/O failure (files
  // already replaced stay complete). `image_quality`: figures already
  // computed for this state, reported instead of computing them again.
  virtual std::vector<std::string> WriteOutputs(
      const std::string& dir, const nlohmann::json& extra,
      const ImageQualityReport* image_quality = nullptr) const = 0;
  // Appends the frame to dir/frames.tif (float32), creating it on the first
  // call. Throws on an I/O failure.
  virtual void KeepFrame(const std::string& dir, const Frame& frame) = 0;

  // Several detectors (docs/protocol.md, "Channels"). SetChannels is called
  // once, before the first frame, with the series' channel names and the one
  // registered on. AddChannelFrames then takes the next frame of every
  // channel, in that order: the registration channel's is registered as
  // AddFrame and the others are averaged with its shifts; it throws
  // std::invalid_argument (nothing changed) like AddFrame or for a wrong count.
  // ChannelAverage is the average of one channel (the registration channel's
  // is Average()). The defaults, for back ends with one channel, refuse more.
  virtual void SetChannels(const std::vector<std::string>& channels,
                           const std::string& register_channel) {
    if (channels.size() > 1 || (channels.size() == 1 && channels[0] != register_channel)) {
      throw std::invalid_argument("this back end averages one channel only");
    }
  }
  virtual RegistrationResult AddChannelFrames(std::vector<Frame> frames) {
    if (frames.size() != 1) throw std::invalid_argument("this back end averages one channel only");
    return AddFrame(std::move(frames[0]));
  }
  virtual AverageImage ChannelAverage(const std::string& /*channel*/) const { return Average(); }
};

// Creates the back end of a new series. `store`: the series' frame journal
// (the daemon has appended each frame to it before AddFrame, so the engine's
// Put of the same frame is a no-op) from which the engine reads old frames
// back, keeping only a bounded cache in RAM; null without one (every frame is
// then kept in RAM). Throws std::invalid_argument for bad options or an empty
// shape.
using LiveEngineFactory = std::function<std::unique_ptr<LiveEngine>(
    const EngineOptions& options, Shape shape, std::shared_ptr<FrameStore> store)>;

// The shipped back end: RegistrationEngine, WriteRegistrationOutputs and a
// TIFF stack writer for frames.tif.
std::unique_ptr<LiveEngine> MakeRegistrationLiveEngine(const EngineOptions& options, Shape shape,
                                                       std::shared_ptr<FrameStore> store);

}  // namespace livealign
