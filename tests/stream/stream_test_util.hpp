#pragma once
// Helpers shared by the stream tests: a light LiveEngine that exercises the
// daemon's plumbing without the numerical engine, and a daemon fixture on
// tcp://127.0.0.1:* ports read back after Start().

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stream/bounded_queue.hpp"

#include "stream/daemon.hpp"
#include "stream/live_engine.hpp"
#include "stream/stream_clients.hpp"

namespace livealign::testing {

// Waits (bounded) until `n` producers are blocked inside Push: the proof
// that a Push waited, observed without sleeping.
template <typename T>
bool WaitForBlockedProducers(const BoundedQueue<T>& queue, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (queue.WaitingProducers() < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Generous: loaded 2-core machines. Under a sanitizer the engine runs 5-20x
// slower (TSan most), so a frame can take longer than 20 s to come out.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::chrono::milliseconds kTimeout{120000};
#else
constexpr std::chrono::milliseconds kTimeout{20000};
#endif

// Shift of each frame = (pixel[0], pixel[1]); the average is the plain mean.
class TracerEngine : public LiveEngine {
 public:
  explicit TracerEngine(Shape shape) : shape_(shape), sum_(shape) {}
  RegistrationResult AddFrame(Frame frame) override {
    if (frame.shape() != shape_) throw std::invalid_argument("shape mismatch");
    FrameState state;
    state.index = static_cast<frame_id_t>(states_.size());
    state.timestamp_s = frame.header().timestamp_s;
    state.shift = Shift{frame.data()[0], frame.data()[1]};
    states_.push_back(state);
    for (std::size_t i = 0; i < frame.pixels().size(); ++i) sum_.data()[i] += frame.data()[i];
    return Snapshot({});
  }
  RegistrationResult Finish() override {
    finished_ = true;
    return Snapshot({});
  }
  RegistrationResult Snapshot(ResultRequest) const override {
    RegistrationResult r;
    r.frames = states_;
    r.quality.num_frames = static_cast<int>(states_.size());
    r.quality.consistency_rms_px = finished_ ? 0.01 : 0.02;
    return r;
  }
  AverageImage Average() const override {
    AverageImage a;
    a.full = sum_.Clone();
    float* pixels = a.full.data();
    for (std::size_t i = 0; i < a.full.pixels().size(); ++i) {
      pixels[i] /= static_cast<float>(states_.size());
    }
    a.valid = AverageImage::Rect{0, shape_.rows, 0, shape_.cols};
    a.num_included = static_cast<int>(states_.size());
    return a;
  }
  std::vector<std::string> WriteOutputs(const std::string& dir, const nlohmann::json& extra,
                                        const ImageQualityReport*) const override {
    std::filesystem::create_directories(dir);
    const std::string path = dir + "/shifts.csv";
    {
      std::ofstream out(path + ".tmp");
      out << "frame,shift_x_px,shift_y_px\n";
      for (const auto& s : states_) out << s.index << "," << s.shift.x << "," << s.shift.y << "\n";
    }
    std::filesystem::rename(path + ".tmp", path);
    std::ofstream(dir + "/report.json") << extra.dump();
    return {path, dir + "/report.json"};
  }
  void KeepFrame(const std::string& dir, const Frame&) override {
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/kept.txt", std::ios::app) << "frame\n";
  }

 private:
  Shape shape_;
  Frame sum_;
  std::vector<FrameState> states_;
  bool finished_ = false;
};

inline LiveEngineFactory TracerFactory() {
  return [](const EngineOptions&, Shape shape, std::shared_ptr<FrameStore>) { return std::make_unique<TracerEngine>(shape); };
}

inline DaemonOptions LocalDaemonOptions(const std::string& pattern, const std::string& out) {
  DaemonOptions o;
  o.source = "tcp://127.0.0.1:*";
  o.source_bind = true;
  o.source_pattern = pattern;
  o.publish = "tcp://127.0.0.1:*";
  o.control = "tcp://127.0.0.1:*";
  o.out = out;
  o.engine.threads = 1;
  o.log_events = false;
  return o;
}

// A frame of float32 pixels whose first two pixels encode the tracer shift.
inline std::vector<float> TracerPixels(Shape shape, float shift_x, float shift_y) {
  std::vector<float> pixels(static_cast<std::size_t>(shape.Pixels()));
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>(i % 7);
  pixels[0] = shift_x;
  pixels[1] = shift_y;
  return pixels;
}

inline FrameMessage FrameHeaderFor(const SeriesId& series, frame_id_t index, Shape shape,
                                   PixelType dtype = PixelType::kFloat32) {
  FrameMessage m;
  m.series = series;
  m.index = index;
  m.shape = shape;
  m.dtype = dtype;
  return m;
}

}  // namespace livealign::testing
