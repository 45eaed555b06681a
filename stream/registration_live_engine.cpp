// The shipped LiveEngine: RegistrationEngine for the numbers,
// WriteRegistrationOutputs for the files, TiffStackWriter for frames.tif.
#include <filesystem>
#include <optional>

#include "adapters/registration_outputs.hpp"
#include "adapters/tiff_io.hpp"
#include "core/registration_engine.hpp"
#include "stream/daemon.hpp"
#include "stream/live_engine.hpp"

namespace livealign {
namespace {

class RegistrationLiveEngine : public LiveEngine {
 public:
  RegistrationLiveEngine(const EngineOptions& options, Shape shape) : engine_(options, shape) {}

  UpdateReport AddFrame(Frame frame) override { return engine_.AddFrame(std::move(frame)); }
  UpdateReport Finish() override { return engine_.Finish(); }
  const std::vector<FrameState>& frames() const override { return engine_.frames(); }
  EngineQuality quality() const override { return engine_.quality(); }
  AverageImage Average() const override { return engine_.Average(); }
  ImageQualityReport ImageQuality() const override { return engine_.ImageQuality(); }
  Frame LatestFrame() const override { return engine_.LatestFrame(); }
  ShiftMatrixSnapshot Matrices() const override { return engine_.Matrices(); }

  std::vector<std::string> WriteOutputs(const std::string& dir, const nlohmann::json& extra,
                                        const ImageQualityReport* image_quality) const override {
    return WriteRegistrationOutputs(dir, engine_, extra, image_quality).written;
  }

  void KeepFrame(const std::string& dir, const Frame& frame) override {
    if (!frames_tif_) {
      std::filesystem::create_directories(dir);
      TiffStackWriterOptions options;
      if (engine_.options().pixel_size_x_A > 0) {
        options.pixel_size_A = engine_.options().pixel_size_x_A;
        if (engine_.options().pixel_size_y_A != engine_.options().pixel_size_x_A) {
          options.pixel_size_y_A = engine_.options().pixel_size_y_A;
        }
      }
      // Each series starts its frames.tif afresh (a restart replaces it).
      frames_tif_.emplace((std::filesystem::path(dir) / "frames.tif").string(), options);
    }
    frames_tif_->Append(frame.view());
  }

 private:
  RegistrationEngine engine_;
  std::optional<TiffStackWriter> frames_tif_;
};

}  // namespace

std::unique_ptr<LiveEngine> MakeRegistrationLiveEngine(const EngineOptions& options, Shape shape) {
  return std::make_unique<RegistrationLiveEngine>(options, shape);
}

Daemon::Daemon(const DaemonOptions& options)
    : Daemon(options, &MakeRegistrationLiveEngine) {
  std::string error;
  if (!options.engine.Check(&error)) throw std::invalid_argument(error);
}

}  // namespace livealign
