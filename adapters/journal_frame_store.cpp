#include "adapters/journal_frame_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <limits>
#include <stdexcept>

#include "adapters/file_error.hpp"

namespace livealign {
namespace {

int OpenReadOnly(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FileError(path, std::string("cannot open: ") + std::strerror(errno));
#ifdef POSIX_FADV_RANDOM
  // Get reads whole records, each in one pread (ReadJournalFrameAt), in no
  // particular order: the kernel's read-ahead (8 MB on some disks) would
  // only read, and cache, the neighbouring frames.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
#endif
  return fd;
}

std::size_t FrameBytes(const Frame& frame) {
  return static_cast<std::size_t>(frame.shape().Pixels()) * sizeof(float) + sizeof(Frame);
}

}  // namespace

JournalFrameStore::JournalFrameStore(std::string path, JournalSeries series,
                                     JournalScan recovered, FrameJournalWriter writer,
                                     int read_fd, const Options& options)
    : path_(std::move(path)),
      series_(std::move(series)),
      recovered_(std::move(recovered)),
      options_(options),
      read_fd_(read_fd),
      writer_(std::move(writer)) {
  journal_end_ = writer_.bytes();
  for (const JournalFrameEntry& entry : recovered_.frames) {
    // A key recorded twice (a journal written by something else) keeps the
    // first record, as Put would have.
    index_.emplace(Key(entry.channel, entry.index), entry);
  }
}

JournalFrameStore::~JournalFrameStore() { ::close(read_fd_); }

std::unique_ptr<JournalFrameStore> JournalFrameStore::Create(const std::string& path,
                                                             const JournalSeries& series,
                                                             const Options& options) {
  FrameJournalWriter writer = FrameJournalWriter::Create(path, options.journal);
  writer.AppendSeries(series);
  const int fd = OpenReadOnly(path);
  return std::unique_ptr<JournalFrameStore>(
      new JournalFrameStore(path, series, JournalScan{}, std::move(writer), fd, options));
}

std::unique_ptr<JournalFrameStore> JournalFrameStore::Open(const std::string& path,
                                                           const Options& options) {
  JournalScan scan = ScanFrameJournal(path);
  if (!scan.series) throw FileError(path, "no series record: " + scan.Summary());
  JournalSeries series = *scan.series;
  FrameJournalWriter writer = FrameJournalWriter::Continue(path, scan.valid_bytes, options.journal);
  const int fd = OpenReadOnly(path);
  return std::unique_ptr<JournalFrameStore>(new JournalFrameStore(
      path, std::move(series), std::move(scan), std::move(writer), fd, options));
}

void JournalFrameStore::Put(frame_id_t index, const std::string& channel, FrameView frame,
                            double timestamp_s) {
  JournalFrameEntry entry;
  entry.index = index;
  entry.wire_index = index;
  entry.channel = channel;
  entry.timestamp_s = timestamp_s;
  entry.shape = frame.shape();
  Append(entry, frame);
}

bool JournalFrameStore::Append(const JournalFrameEntry& entry, FrameView frame) {
  std::lock_guard<std::mutex> write_lock(write_mutex_);
  if (Contains(entry.index, entry.channel)) return false;
  JournalFrameEntry stored = entry;
  stored.shape = frame.shape();
  stored.offset = writer_.AppendFrame(stored, frame);
  std::lock_guard<std::mutex> lock(mutex_);
  journal_end_ = writer_.bytes();
  index_.emplace(Key(stored.channel, stored.index), std::move(stored));
  return true;
}

bool JournalFrameStore::Contains(frame_id_t index, const std::string& channel) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return index_.count(Key(channel, index)) > 0;
}

void JournalFrameStore::MarkFinished(const std::string& reason) {
  std::lock_guard<std::mutex> write_lock(write_mutex_);
  writer_.AppendFinish(reason);
}

std::uint64_t JournalFrameStore::journal_bytes() const {
  std::lock_guard<std::mutex> write_lock(write_mutex_);
  return writer_.bytes();
}

Frame JournalFrameStore::Get(frame_id_t index, const std::string& channel) const {
  return GetShared(index, channel)->Clone();
}

std::shared_ptr<const Frame> JournalFrameStore::GetShared(frame_id_t index,
                                                          const std::string& channel) const {
  const Key key(channel, index);
  std::uint64_t offset = 0;
  std::uint64_t journal_end = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    journal_end = journal_end_;
    auto cached = cache_pos_.find(key);
    if (cached != cache_pos_.end()) {
      cache_.splice(cache_.begin(), cache_, cached->second);
      return cached->second->second;
    }
    auto it = index_.find(key);
    if (it == index_.end()) {
      throw std::out_of_range("JournalFrameStore: no frame " + std::to_string(index) +
                              (channel.empty() ? "" : " of channel " + channel));
    }
    offset = it->second.offset;
  }
  // Read outside the lock: several threads read at once.
  std::uint64_t end = 0;
  JournalFrame read = ReadJournalFrameAt(read_fd_, offset, path_, &end);
  // A frame older than the writer's page-cache window is read from disk;
  // its pages are dropped again, as the writer drops the window's tail.
  const std::uint64_t window = options_.journal.page_cache_bytes;
  if (window > 0 && end + window <= journal_end) DropJournalPages(read_fd_, offset, end);
  auto frame = std::make_shared<const Frame>(std::move(read).ToFrame());
  const std::size_t bytes = FrameBytes(*frame);
  if (bytes <= options_.cache_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cache_pos_.count(key) == 0) {
      cache_.emplace_front(key, frame);
      cache_pos_[key] = cache_.begin();
      cache_bytes_ += bytes;
      while (cache_bytes_ > options_.cache_bytes) {
        cache_bytes_ -= FrameBytes(*cache_.back().second);
        cache_pos_.erase(cache_.back().first);
        cache_.pop_back();
      }
    }
  }
  return frame;
}

frame_id_t JournalFrameStore::Count(const std::string& channel) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto first = index_.lower_bound(Key(channel, std::numeric_limits<frame_id_t>::min()));
  auto last = index_.upper_bound(Key(channel, std::numeric_limits<frame_id_t>::max()));
  return static_cast<frame_id_t>(std::distance(first, last));
}

std::size_t JournalFrameStore::bytes_in_memory() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cache_bytes_ + index_.size() * (sizeof(JournalFrameEntry) + 48);
}

}  // namespace livealign
