// The FrameStore interface in use: MemoryFrameStore's contract, and the
// engine storing every accepted frame while its averager keeps only a
// bounded cache and reads older frames back.
#include "core/frame_store.hpp"

#include <catch2/catch.hpp>

#include "core/registration_engine.hpp"
#include "core/simulator.hpp"
#include "tests/core/counting_frame_store.hpp"

namespace livealign {
namespace {

TEST_CASE("MemoryFrameStore returns what was put, per channel", "[core][frame_store]") {
  MemoryFrameStore store;
  Frame a(Shape{2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  store.Put(0, "", a, 1.5);
  store.Put(0, "", Frame(Shape{2, 3}), 9.0);  // already stored: no-op
  store.Put(0, "haadf", Frame(Shape{1, 1}, std::vector<float>{7.0f}), 2.0);
  REQUIRE(store.Count() == 1);
  REQUIRE(store.Count("haadf") == 1);
  const Frame back = store.Get(0);
  REQUIRE(back.pixels() == a.pixels());
  REQUIRE(back.header().timestamp_s == 1.5);
  REQUIRE(back.header().index == 0);
  REQUIRE(store.bytes_in_memory() == 7 * sizeof(float));
  REQUIRE_THROWS_AS(store.Get(1), std::out_of_range);
}

TEST_CASE("MemoryFrameStore keeps a shared frame without a copy when its header names the index",
          "[core][frame_store]") {
  MemoryFrameStore store;
  FrameHeader header;
  header.index = 0;
  header.timestamp_s = 3.0;
  header.shape = Shape{1, 2};
  auto named = std::make_shared<const Frame>(Shape{1, 2}, std::vector<float>{1, 2}, header);
  store.PutShared(0, "", named);
  REQUIRE(store.GetShared(0) == named);  // the same frame, not a copy
  REQUIRE(store.Get(0).pixels() == named->pixels());
  REQUIRE(store.Get(0).header().timestamp_s == 3.0);

  // A frame whose header names another index is stored as a copy under the
  // index it was put at.
  header.index = 7;
  auto misnamed = std::make_shared<const Frame>(Shape{1, 2}, std::vector<float>{3, 4}, header);
  store.PutShared(1, "", misnamed);
  const std::shared_ptr<const Frame> back = store.GetShared(1);
  REQUIRE(back != misnamed);
  REQUIRE(back->header().index == 1);
  REQUIRE(back->header().timestamp_s == 3.0);
  REQUIRE(back->pixels() == misnamed->pixels());
  REQUIRE(store.bytes_in_memory() == 4 * sizeof(float));
  store.PutShared(1, "", named);  // already stored: no-op
  REQUIRE(store.GetShared(1)->pixels() == misnamed->pixels());
  REQUIRE_THROWS_AS(store.GetShared(2), std::out_of_range);
}

TEST_CASE("the engine stores every frame, keeps a bounded cache and reads old frames back",
          "[core][frame_store][registration_engine]") {
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 1.0;
  sim.initial_velocity_px_per_frame = {0.6, -0.4};
  Simulator microscope(sim, 5);
  const int n = 20;
  EngineOptions cached_options;
  cached_options.frame_cache_frames = 2;
  cached_options.threads = 2;
  EngineOptions all_options;
  all_options.frame_cache_frames = n;  // every frame stays cached
  all_options.threads = 2;
  auto store = std::make_shared<CountingFrameStore>();
  RegistrationEngine cached(cached_options, sim.shape, store);
  RegistrationEngine reference(all_options, sim.shape);
  const std::size_t frame_bytes = 128u * 128 * sizeof(float);
  for (int k = 0; k < n; ++k) {
    Frame frame = microscope.NextFrame();
    reference.AddFrame(frame.Clone());
    cached.AddFrame(std::move(frame));
    REQUIRE(cached.frame_bytes() <= 2 * frame_bytes);
  }
  REQUIRE(store->puts() == n);
  REQUIRE(store->Count() == n);
  REQUIRE(cached.store_bytes() == n * frame_bytes);
  REQUIRE(reference.frame_bytes() == n * frame_bytes);
  const long live_gets = store->gets();
  const RegistrationResult cached_result = cached.Finish();
  const RegistrationResult reference_result = reference.Finish();
  // The precision stage needs every frame once: the evicted ones are read back.
  CAPTURE(live_gets, store->gets());
  REQUIRE(store->gets() >= live_gets + (n - 2));
  REQUIRE(cached.frame_bytes() == 2 * frame_bytes);
  // Reading back changes nothing: the same shifts and the same average.
  for (int k = 0; k < n; ++k) {
    CAPTURE(k);
    REQUIRE(cached_result.frames[k].shift == reference_result.frames[k].shift);
  }
  REQUIRE(cached.Average().full.pixels() == reference.Average().full.pixels());
  REQUIRE(cached.LatestFrame().pixels() == reference.LatestFrame().pixels());
}

// A store whose disk is full: Put throws.
class FullStore final : public FrameStore {
 public:
  void Put(frame_id_t, const std::string&, FrameView, double) override {
    throw std::runtime_error("no space left on device");
  }
  Frame Get(frame_id_t index, const std::string& = "") const override {
    throw std::out_of_range("FullStore: no frame " + std::to_string(index));
  }
  frame_id_t Count(const std::string& = "") const override { return 0; }
  std::size_t bytes_in_memory() const override { return 0; }
};

TEST_CASE("a frame the store cannot keep is not accepted", "[core][frame_store][registration_engine]") {
  SimulatorOptions sim;
  sim.shape = Shape{64, 64};
  Simulator microscope(sim, 1);
  RegistrationEngine engine(EngineOptions{}, sim.shape, std::make_shared<FullStore>());
  REQUIRE_THROWS_AS(engine.AddFrame(microscope.NextFrame()), std::runtime_error);
  REQUIRE(engine.num_frames() == 0);
  REQUIRE_THROWS_AS(RegistrationEngine(EngineOptions{}, sim.shape, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
