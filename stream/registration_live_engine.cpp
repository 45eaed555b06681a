// The shipped LiveEngine: RegistrationEngine for the numbers,
// WriteRegistrationOutputs for the files, TiffStackWriter for frames.tif.
#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>

#include "adapters/registration_outputs.hpp"
#include "adapters/tiff_io.hpp"
#include "core/channel_averages.hpp"
#include "core/registration_engine.hpp"
#include "stream/daemon.hpp"
#include "stream/live_engine.hpp"

namespace livealign {
namespace {

class RegistrationLiveEngine : public LiveEngine {
 public:
  RegistrationLiveEngine(const EngineOptions& options, Shape shape, std::shared_ptr<FrameStore> store)
      : engine_(options, shape, store ? std::move(store) : std::make_shared<MemoryFrameStore>()) {}

  RegistrationResult AddFrame(Frame frame) override { return engine_.AddFrame(std::move(frame)); }
  RegistrationResult Finish() override {
    RegistrationResult result = engine_.Finish();
    if (others_) others_->Follow(result.frames, /*final=*/true);
    return result;
  }
  RegistrationResult Snapshot(ResultRequest request) const override {
    return engine_.Snapshot(request);
  }
  AverageImage Average() const override { return engine_.Average(); }
  ImageQualityReport ImageQuality() const override { return engine_.ImageQuality(); }
  Frame LatestFrame() const override { return engine_.LatestFrame(); }

  std::vector<std::string> WriteOutputs(const std::string& dir, const nlohmann::json& extra,
                                        const ImageQualityReport* image_quality) const override {
    // The files describe the last update; the shift matrix is for shift_matrix.png.
    const RegistrationResult result = engine_.Snapshot(ResultRequest::ShiftMatrixPicture(engine_.num_frames()));
    if (channels_.empty()) {
      return WriteRegistrationOutputs(dir, engine_, result, extra, image_quality).written;
    }
    std::vector<NamedAverage> averages;
    for (const std::string& channel : channels_) averages.push_back({channel, ChannelAverage(channel)});
    const std::optional<double> pixel_size_A =
        engine_.options().pixel_size_x_A > 0 ? std::optional<double>(engine_.options().pixel_size_x_A)
                                             : std::nullopt;
    nlohmann::json with_channels = extra;
    with_channels["channels"] = WriteChannelAverages(dir, averages, register_channel_, pixel_size_A);
    std::vector<std::string> written = with_channels["channels"]["files"];
    for (std::string& path : WriteRegistrationOutputs(dir, engine_, result, with_channels, image_quality).written) {
      written.push_back(std::move(path));
    }
    return written;
  }

  void SetChannels(const std::vector<std::string>& channels,
                   const std::string& register_channel) override {
    if (engine_.num_frames() > 0) throw std::logic_error("SetChannels after the first frame");
    if (std::find(channels.begin(), channels.end(), register_channel) == channels.end()) {
      throw std::invalid_argument("register channel '" + register_channel + "' is not a channel");
    }
    std::vector<std::string> others;
    for (const std::string& c : channels) {
      if (c != register_channel) others.push_back(c);
    }
    others_.emplace(others);
    channels_ = channels;
    register_channel_ = register_channel;
  }

  RegistrationResult AddChannelFrames(std::vector<Frame> frames) override {
    if (frames.size() != std::max<std::size_t>(1, channels_.size())) {
      throw std::invalid_argument(std::to_string(frames.size()) + " channel frames for " +
                                  std::to_string(channels_.size()) + " channels");
    }
    if (channels_.empty()) return AddFrame(std::move(frames[0]));
    Frame registered;
    std::vector<Frame> others;
    for (std::size_t c = 0; c < frames.size(); ++c) {
      if (frames[c].shape() != engine_.frame_shape()) {
        throw std::invalid_argument("channel " + channels_[c] + ": frame shape differs from the series'");
      }
      if (channels_[c] == register_channel_) {
        registered = std::move(frames[c]);
      } else {
        others.push_back(std::move(frames[c]));
      }
    }
    RegistrationResult result = engine_.AddFrame(std::move(registered));
    others_->AddFrames(std::move(others), result.frames.back());
    others_->Follow(result.frames, /*final=*/false);
    return result;
  }

  AverageImage ChannelAverage(const std::string& channel) const override {
    if (channel == register_channel_ || channels_.empty()) return engine_.Average();
    return others_->Average(channel);
  }

  // frames.tif holds the registration channel; a several-detector series adds
  // frames_<channel>.tif for each other channel (the input of `livealign
  // apply`).
  void KeepFrame(const std::string& dir, const Frame& frame) override {
    auto open = [&](const std::string& name) {
      std::filesystem::create_directories(dir);
      TiffStackWriterOptions options;
      if (engine_.options().pixel_size_x_A > 0) {
        options.pixel_size_A = engine_.options().pixel_size_x_A;
        if (engine_.options().pixel_size_y_A != engine_.options().pixel_size_x_A) {
          options.pixel_size_y_A = engine_.options().pixel_size_y_A;
        }
      }
      // Each series starts its stacks afresh (a restart replaces them).
      return TiffStackWriter((std::filesystem::path(dir) / name).string(), options);
    };
    if (!frames_tif_) frames_tif_.emplace(open("frames.tif"));
    frames_tif_->Append(frame.view());
    if (!others_ || others_->num_frames() == 0) return;
    for (const std::string& channel : others_->channels()) {
      auto it = channel_tifs_.find(channel);
      if (it == channel_tifs_.end()) {
        it = channel_tifs_.emplace(channel, open("frames_" + channel + ".tif")).first;
      }
      it->second.Append(others_->frame(channel, others_->num_frames() - 1));
    }
  }

 private:
  RegistrationEngine engine_;
  std::optional<TiffStackWriter> frames_tif_;
  // Several detectors: every channel, the one registered on, and the averages
  // of the others (empty / unset for one unnamed channel).
  std::vector<std::string> channels_;
  std::string register_channel_;
  std::optional<ChannelAverages> others_;
  std::map<std::string, TiffStackWriter> channel_tifs_;  // frames_<channel>.tif
};

}  // namespace

std::unique_ptr<LiveEngine> MakeRegistrationLiveEngine(const EngineOptions& options, Shape shape,
                                                       std::shared_ptr<FrameStore> store) {
  return std::make_unique<RegistrationLiveEngine>(options, shape, std::move(store));
}

Daemon::Daemon(const DaemonOptions& options)
    : Daemon(options, &MakeRegistrationLiveEngine) {
  std::string error;
  if (!options.engine.Check(&error)) throw std::invalid_argument(error);
}

}  // namespace livealign
