#pragma once
// JournalFrameStore: the FrameStore of core/frame_store.hpp on a frame
// journal (adapters/frame_journal.hpp). Put appends a frame record (once per
// (index, channel): a second Put of the same key is a no-op); Get reads the
// record back by its offset, through a small cache of recently read frames
// bounded in bytes. The journal file is the daemon's write-ahead log: a
// restarted daemon Opens it, replays `recovered()` and continues appending.
//
// Thread-safety: Get, Count, Contains and bytes_in_memory may be called from
// any number of threads, also while one thread calls Put/Append/MarkFinished
// (reads use pread on their own descriptor; the index and the cache are
// guarded by one mutex; appends by another).
//
//   auto store = JournalFrameStore::Create(dir + "/frames.journal", series, {});
//   store->Append({/*index=*/0, /*wire_index=*/17, "", t, shape}, frame);
//   Frame again = store->Get(0);
//   store->MarkFinished("series_end");
//   ...
//   auto resumed = JournalFrameStore::Open(dir + "/frames.journal", {});
//   resumed->recovered().Summary();   // frames found, corrupt tail dropped

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "adapters/frame_journal.hpp"
#include "core/frame_store.hpp"

namespace livealign {

class JournalFrameStore final : public FrameStore {
 public:
  struct Options {
    // Bytes of recently read frames kept in RAM. Every Get that misses costs
    // one pread of the frame (page cache, usually: the journal was just
    // written); the cache only spares repeated reads of the same frames.
    std::size_t cache_bytes = std::size_t{64} << 20;
    FrameJournalWriter::Options journal;
  };

  // Starts a new journal at `path` (replacing any file there) with `series`
  // as its first record. Throws FileError.
  static std::unique_ptr<JournalFrameStore> Create(const std::string& path,
                                                   const JournalSeries& series,
                                                   const Options& options);
  // Opens an existing journal: scans it, truncates a torn or corrupt tail
  // (reported in recovered().corruptions) and appends after the last good
  // record. Throws FileError when it cannot be read, or has no series record.
  static std::unique_ptr<JournalFrameStore> Open(const std::string& path, const Options& options);

  JournalFrameStore(const JournalFrameStore&) = delete;
  JournalFrameStore& operator=(const JournalFrameStore&) = delete;
  ~JournalFrameStore() override;

  // FrameStore. Put records wire_index = index.
  void Put(frame_id_t index, const std::string& channel, FrameView frame,
           double timestamp_s) override;
  Frame Get(frame_id_t index, const std::string& channel = "") const override;
  // The cached frame itself, not a copy: a reader of every frame (the
  // averager's rebuild at the series end) holds one frame per read, not two.
  std::shared_ptr<const Frame> GetShared(frame_id_t index,
                                         const std::string& channel = "") const override;
  frame_id_t Count(const std::string& channel = "") const override;
  std::size_t bytes_in_memory() const override;

  // Appends a frame record with its wire index (entry.offset is ignored).
  // Returns false, writing nothing, when (index, channel) is already stored.
  // Throws FileError on an I/O failure (the frame is then not stored).
  bool Append(const JournalFrameEntry& entry, FrameView frame);
  bool Contains(frame_id_t index, const std::string& channel = "") const;
  // Appends the finish record: the series is complete and will not be resumed.
  void MarkFinished(const std::string& reason);

  // The series record, and what Open found (empty for a created store).
  const JournalSeries& series() const { return series_; }
  const JournalScan& recovered() const { return recovered_; }
  const std::string& path() const { return path_; }
  std::uint64_t journal_bytes() const;

 private:
  JournalFrameStore(std::string path, JournalSeries series, JournalScan recovered,
                    FrameJournalWriter writer, int read_fd, const Options& options);
  using Key = std::pair<std::string, frame_id_t>;  // (channel, index)

  const std::string path_;
  const JournalSeries series_;
  const JournalScan recovered_;
  const Options options_;
  const int read_fd_;

  mutable std::mutex write_mutex_;  // guards writer_ (one append at a time)
  FrameJournalWriter writer_;

  mutable std::mutex mutex_;  // guards everything below
  std::map<Key, JournalFrameEntry> index_;
  std::uint64_t journal_end_ = 0;  // journal bytes after the last append
  // Most recently used first; cache_pos_ finds a key's element.
  mutable std::list<std::pair<Key, std::shared_ptr<const Frame>>> cache_;
  mutable std::map<Key, decltype(cache_)::iterator> cache_pos_;
  mutable std::size_t cache_bytes_ = 0;
};

}  // namespace livealign
