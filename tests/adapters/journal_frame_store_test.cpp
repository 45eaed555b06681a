#include "adapters/journal_frame_store.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "adapters/file_error.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

Frame TestFrame(Shape shape, frame_id_t index) {
  Frame frame(shape);
  for (int r = 0; r < shape.rows; ++r) {
    for (int c = 0; c < shape.cols; ++c) {
      frame.at(r, c) = static_cast<float>(index) * 100.0f + static_cast<float>(r * shape.cols + c);
    }
  }
  return frame;
}

JournalSeries TestSeries(Shape shape) {
  JournalSeries s;
  s.series = 12;
  s.shape = shape;
  return s;
}

TEST_CASE("JournalFrameStore stores, reads back and ignores duplicate puts",
          "[journal_frame_store]") {
  const std::string path = testing::ScratchDir("journal_store_basic") + "/frames.journal";
  const Shape shape{16, 12};
  auto store = JournalFrameStore::Create(path, TestSeries(shape), {});
  for (frame_id_t i = 0; i < 10; ++i) store->Put(i, "", TestFrame(shape, i), 0.5 * i);
  store->Put(2, "DF", TestFrame(shape, 77), 1.0);
  const std::uint64_t bytes = store->journal_bytes();
  store->Put(3, "", TestFrame(shape, 99), 9.0);  // duplicate: a no-op
  REQUIRE(store->journal_bytes() == bytes);
  REQUIRE(store->Count() == 10);
  REQUIRE(store->Count("DF") == 1);
  REQUIRE(store->Count("BF") == 0);
  for (frame_id_t i = 0; i < 10; ++i) {
    const Frame f = store->Get(i);
    REQUIRE(f.header().index == i);
    REQUIRE(f.header().timestamp_s == 0.5 * i);
    REQUIRE(f.shape() == shape);
    REQUIRE(f.pixels() == TestFrame(shape, i).pixels());
  }
  REQUIRE(store->Get(2, "DF").pixels() == TestFrame(shape, 77).pixels());
  REQUIRE_THROWS_AS(store->Get(10), std::out_of_range);
  REQUIRE_THROWS_AS(store->Get(0, "BF"), std::out_of_range);
}

TEST_CASE("JournalFrameStore's read cache stays within its bound", "[journal_frame_store]") {
  const std::string path = testing::ScratchDir("journal_store_cache") + "/frames.journal";
  const Shape shape{64, 64};  // 16 kB per frame
  JournalFrameStore::Options options;
  options.cache_bytes = 5 * 16384 + 5 * 200;
  auto store = JournalFrameStore::Create(path, TestSeries(shape), options);
  for (frame_id_t i = 0; i < 40; ++i) store->Put(i, "", TestFrame(shape, i), 0);
  const std::size_t index_only = store->bytes_in_memory();
  for (frame_id_t i = 0; i < 40; ++i) {
    REQUIRE(store->Get(i).pixels() == TestFrame(shape, i).pixels());
    REQUIRE(store->bytes_in_memory() <= index_only + options.cache_bytes);
  }
  REQUIRE(store->bytes_in_memory() > index_only + 3 * 16384);  // it does cache
  // Cached frames come back as independent copies.
  Frame a = store->Get(39);
  a.at(0, 0) = -1;
  REQUIRE(store->Get(39).at(0, 0) == TestFrame(shape, 39).at(0, 0));
  // GetShared hands out the cached frame itself (no copy), which stays
  // valid after the cache has dropped it.
  const std::shared_ptr<const Frame> shared = store->GetShared(39);
  REQUIRE(store->GetShared(39) == shared);
  REQUIRE(shared->header().index == 39);
  for (frame_id_t i = 0; i < 10; ++i) store->GetShared(i);  // evicts 39
  REQUIRE(store->bytes_in_memory() <= index_only + options.cache_bytes);
  const std::shared_ptr<const Frame> again = store->GetShared(39);
  REQUIRE(again != shared);
  REQUIRE(shared->pixels() == TestFrame(shape, 39).pixels());
  REQUIRE(again->pixels() == shared->pixels());
}

// Pages of [offset, end) of the file that are in the page cache, or -1 when
// the file system keeps no separate page cache to drop from (tmpfs, say:
// DropJournalPages is then a no-op) or mincore is not available.
long ResidentPages(const std::string& path, std::uint64_t offset, std::uint64_t end) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return -1;
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::size_t length = static_cast<std::size_t>(end - offset);
  void* map = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(offset));
  ::close(fd);
  if (map == MAP_FAILED) return -1;
  std::vector<unsigned char> resident((length + page - 1) / page);
  long count = -1;
  if (::mincore(map, length, resident.data()) == 0) {
    count = 0;
    for (unsigned char r : resident) count += r & 1;
  }
  ::munmap(map, length);
  return count;
}

TEST_CASE("JournalFrameStore keeps only its page-cache window of the journal in the page cache",
          "[journal_frame_store]") {
  const std::string path = testing::ScratchDir("journal_store_page_cache") + "/frames.journal";
  const Shape shape{512, 512};  // 1 MiB per frame
  const std::uint64_t frame_bytes = std::uint64_t{1} << 20;
  JournalFrameStore::Options options;
  options.cache_bytes = 0;  // every Get reads the journal
  options.journal.page_cache_bytes = 2 * frame_bytes;
  auto store = JournalFrameStore::Create(path, TestSeries(shape), options);
  for (frame_id_t i = 0; i < 16; ++i) store->Put(i, "", TestFrame(shape, i), 0);
  const std::uint64_t size = store->journal_bytes();
  const long page = ::sysconf(_SC_PAGESIZE);
  // The newest frames were just written: in the cache (a control that the
  // measurement sees the page cache at all).
  const long recent = ResidentPages(path, (size - frame_bytes) / page * page, size / page * page);
  if (recent <= 0) {
    WARN("this file system keeps no page cache to measure; skipped");
    return;
  }
  // Frames 0-7 (the first 8 MiB) lie beyond the window plus one write-back
  // chunk (4 MiB): dropped.
  REQUIRE(ResidentPages(path, 0, 8 * frame_bytes) == 0);
  // A frame read back from there is dropped again after the read...
  REQUIRE(store->Get(3).pixels() == TestFrame(shape, 3).pixels());
  REQUIRE(ResidentPages(path, 0, 8 * frame_bytes) == 0);
  // ... and one inside the window stays cached.
  REQUIRE(store->Get(15).pixels() == TestFrame(shape, 15).pixels());
  REQUIRE(ResidentPages(path, (size - frame_bytes) / page * page, size / page * page) > 0);

  // With no window, nothing is dropped.
  const std::string kept_path = testing::ScratchDir("journal_store_page_cache_kept") + "/frames.journal";
  options.journal.page_cache_bytes = 0;
  auto kept = JournalFrameStore::Create(kept_path, TestSeries(shape), options);
  for (frame_id_t i = 0; i < 16; ++i) kept->Put(i, "", TestFrame(shape, i), 0);
  REQUIRE(ResidentPages(kept_path, 0, 8 * frame_bytes) > 0);
}

TEST_CASE("JournalFrameStore serves concurrent Get calls while appending",
          "[journal_frame_store]") {
  const std::string path = testing::ScratchDir("journal_store_threads") + "/frames.journal";
  const Shape shape{32, 32};
  JournalFrameStore::Options options;
  options.cache_bytes = 3 * 4096;  // small: most reads go to the file
  auto store = JournalFrameStore::Create(path, TestSeries(shape), options);
  for (frame_id_t i = 0; i < 20; ++i) store->Put(i, "", TestFrame(shape, i), 0);
  // The writer starts only once every reader has finished a round, and each reader goes on
  // until the writer is done, so reads overlap appends however the threads are scheduled.
  std::atomic<bool> writing{true};
  std::atomic<int> readers_started{0};
  std::vector<int> mismatches(4, 0), reads(4, 0), reads_after_writes(4, 0);
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      bool done = false;
      for (int round = 0; !done; ++round) {
        done = !writing.load();  // this round reads everything the writer wrote
        const frame_id_t n = store->Count();
        for (frame_id_t i = (t * 7) % n; i < n; i += 3) {
          const Frame f = store->Get(i);
          if (f.pixels() != TestFrame(shape, i).pixels()) ++mismatches[t];
          ++reads[t];
          if (i >= 20) ++reads_after_writes[t];
        }
        if (round == 0) ++readers_started;
      }
    });
  }
  while (readers_started.load() < 4) std::this_thread::yield();
  for (frame_id_t i = 20; i < 120; ++i) store->Put(i, "", TestFrame(shape, i), 0);
  writing = false;
  for (std::thread& t : readers) t.join();
  for (int t = 0; t < 4; ++t) {
    REQUIRE(mismatches[t] == 0);
    // The last round saw all 120 frames: at least the appended ones from its start on.
    REQUIRE(reads_after_writes[t] >= (120 - 20) / 3);
    REQUIRE(reads[t] > reads_after_writes[t]);  // and it had read the first 20 before
  }
  REQUIRE(store->Count() == 120);
}

TEST_CASE("JournalFrameStore reopens a journal, drops its torn tail and continues",
          "[journal_frame_store]") {
  const std::string path = testing::ScratchDir("journal_store_reopen") + "/frames.journal";
  const Shape shape{20, 20};
  std::uint64_t good_bytes = 0;
  {
    auto store = JournalFrameStore::Create(path, TestSeries(shape), {});
    for (frame_id_t i = 0; i < 8; ++i) {
      JournalFrameEntry entry;
      entry.index = i;
      entry.wire_index = 2 * i;
      entry.timestamp_s = i;
      entry.shape = shape;
      REQUIRE(store->Append(entry, TestFrame(shape, i)));
    }
    good_bytes = store->journal_bytes();
    store->Put(8, "", TestFrame(shape, 8), 8.0);
  }
  // Tear the last record as a kill -9 in the middle of a write would.
  std::filesystem::resize_file(path, good_bytes + 50);

  auto store = JournalFrameStore::Open(path, {});
  const JournalScan& scan = store->recovered();
  REQUIRE(scan.frames.size() == 8);
  REQUIRE(scan.corruptions.size() == 1);
  REQUIRE(scan.corruptions[0].reason == "torn record at end of file");
  REQUIRE_FALSE(scan.finished);
  REQUIRE(store->series().series == 12);
  REQUIRE(store->Count() == 8);
  REQUIRE(scan.frames[5].wire_index == 10);
  REQUIRE(store->Contains(7));
  REQUIRE_FALSE(store->Contains(8));
  store->Put(8, "", TestFrame(shape, 8), 8.0);
  store->MarkFinished("series_end");
  REQUIRE(store->Get(8).pixels() == TestFrame(shape, 8).pixels());
  REQUIRE(store->Get(3).pixels() == TestFrame(shape, 3).pixels());

  const JournalScan again = ScanFrameJournal(path);
  REQUIRE(again.corruptions.empty());
  REQUIRE(again.frames.size() == 9);
  REQUIRE(again.finished == std::optional<std::string>("series_end"));

  // A file without a series record is not a journal to resume.
  const std::string empty = testing::ScratchDir("journal_store_reopen") + "/empty.journal";
  std::ofstream(empty, std::ios::binary).put('x');
  REQUIRE_THROWS_AS(JournalFrameStore::Open(empty, {}), FileError);
}

}  // namespace
}  // namespace livealign
