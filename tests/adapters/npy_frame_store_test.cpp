#include "adapters/npy_frame_store.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "adapters/file_error.hpp"
#include "adapters/npy_writer.hpp"
#include "core/registration_engine.hpp"
#include "core/simulator.hpp"
#include "tests/support/ramp_frames.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {

TEST_CASE("npy frame store hands back the file's frames with the timestamps put",
          "[adapters][npy][store]") {
  const std::string path = testing::ScratchDir("npy_frame_store") + "/stack.npy";
  const std::vector<Frame> frames = testing::RampFrames(3, Shape{4, 6});
  WriteNpy(path, frames);
  NpyFrameStore store(path);
  CHECK(store.Count() == 0);
  CHECK_THROWS_AS(store.Get(0), std::out_of_range);  // in the file, but not accepted yet

  store.Put(0, "", frames[0].view(), 1.5);
  store.Put(1, "", frames[1].view(), 2.5);
  store.Put(1, "", frames[1].view(), 99.0);  // a second Put is a no-op
  CHECK(store.Count() == 2);
  CHECK(store.Count("haadf") == 0);
  const Frame first = store.Get(0);
  CHECK(first.pixels() == frames[0].pixels());
  CHECK(first.header().index == 0);
  CHECK(first.header().timestamp_s == 1.5);
  const std::shared_ptr<const Frame> second = store.GetShared(1);
  CHECK(second->pixels() == frames[1].pixels());
  CHECK(second->header().timestamp_s == 2.5);
  CHECK_THROWS_AS(store.Get(2), std::out_of_range);
  CHECK_THROWS_AS(store.Get(0, "haadf"), std::out_of_range);
  // Far less than the frames themselves: the pixels stay in the file.
  CHECK(store.bytes_in_memory() < frames[0].pixels().size() * sizeof(float));
}

TEST_CASE("npy frame store refuses what the file does not hold", "[adapters][npy][store]") {
  const std::string dir = testing::ScratchDir("npy_frame_store_refuse");
  const std::vector<Frame> frames = testing::RampFrames(2, Shape{4, 6});
  WriteNpy(dir + "/stack.npy", frames);
  NpyFrameStore store(dir + "/stack.npy");
  CHECK_THROWS_AS(store.Put(2, "", frames[0].view(), 0), std::invalid_argument);
  CHECK_THROWS_AS(store.Put(-1, "", frames[0].view(), 0), std::invalid_argument);
  CHECK_THROWS_AS(store.Put(0, "bf", frames[0].view(), 0), std::invalid_argument);
  const Frame wrong_shape(Shape{6, 4});
  CHECK_THROWS_AS(store.Put(0, "", wrong_shape.view(), 0), std::invalid_argument);
  CHECK(store.Count() == 0);
  CHECK_THROWS_AS(NpyFrameStore(dir + "/missing.npy"), FileError);
}

TEST_CASE("an engine whose frames live in the npy file registers exactly as one keeping them in RAM",
          "[adapters][npy][store][engine]") {
  // Drift enough that the solver revises earlier shifts and the averager
  // reads frames back beyond its two-frame cache, and the final refinement
  // reads every frame again.
  SimulatorOptions sim;
  sim.shape = {96, 96};
  sim.initial_velocity_px_per_frame = {0.7, -0.4};
  sim.random_acceleration_px = 0.2;
  const SimulatedSeries series = Simulate(sim, 12, 7);
  const std::string path = testing::ScratchDir("npy_frame_store_engine") + "/series.npy";
  WriteNpy(path, series.frames);

  EngineOptions options;
  options.frame_cache_frames = 2;
  options.threads = 1;  // one worker: both runs do the same arithmetic in the same order
  auto run = [&](std::shared_ptr<FrameStore> store) {
    RegistrationEngine engine(options, sim.shape, store);
    for (const Frame& frame : series.frames) engine.AddFrame(frame.Clone());
    const RegistrationResult result = engine.Finish();
    std::vector<Shift> shifts;
    for (const FrameState& f : result.frames) shifts.push_back(f.shift);
    return std::make_pair(shifts, engine.Average().full.pixels());
  };
  const auto file_store = std::make_shared<NpyFrameStore>(path);
  const auto [file_shifts, file_average] = run(file_store);
  const auto [memory_shifts, memory_average] = run(std::make_shared<MemoryFrameStore>());
  CHECK(file_store->Count() == 12);
  REQUIRE(file_shifts.size() == memory_shifts.size());
  for (std::size_t i = 0; i < file_shifts.size(); ++i) {
    CHECK(file_shifts[i].x == memory_shifts[i].x);
    CHECK(file_shifts[i].y == memory_shifts[i].y);
  }
  CHECK(file_average == memory_average);
}

}  // namespace livealign
