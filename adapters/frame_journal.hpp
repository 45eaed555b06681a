#pragma once
// The frame journal: an append-only file holding one series as it was
// received (a series record, then one record per accepted frame and channel,
// then a finish record once the series' outputs are written). It is both the
// per-series frame store on disk (frames are read back by offset) and the
// write-ahead log a restarted daemon resumes from (docs/protocol.md,
// "Durability").
//
// Physical format, after LevelDB's log (db/log_format.h): the file is a
// sequence of 32 KiB blocks. A block holds physical records
//
//   checksum : uint32  masked CRC32C of type and payload (little-endian)
//   length   : uint16  payload bytes (little-endian)
//   type     : uint8   1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST
//   payload  : length bytes
//
// A logical record that does not fit in the rest of a block is split into
// FIRST, MIDDLE..., LAST fragments; a block tail too short for a header (< 7
// bytes) is zero padding. The CRC is masked (rotated and offset) so that a
// journal stored inside another checksummed stream does not checksum to
// itself. Every logical record starts with one kind byte:
//
//   'S' series:  JSON text of JournalSeries
//   'F' frame:   index i64, wire_index i64, timestamp_s f64, rows i32,
//                cols i32, channel length u16, channel bytes, then
//                rows*cols float32 pixels, all little-endian
//   'M' frame metadata: JSON text {"index": i, "scan_offset_px": [x, y]},
//                written just before the frame records of position i when
//                the frame carries per-frame metadata (docs/protocol.md,
//                scan_offset_px); applies to every channel's record of i
//   'E' finish:  JSON text {"reason": ...}
//
// Versions: journals without 'M' records (written before it existed) read
// unchanged, their frames without metadata. A reader older than the 'M'
// record reports each one as an "unknown record kind" corruption and reads
// everything else: only the metadata is lost.
//
// Pixels are stored as float32, the engine's input after ConvertToFloat, not
// in the wire dtype: a replay then feeds the engine exactly the values it saw
// the first time (bit-identical, so a resumed series registers the same), and
// the reader needs no conversion code. The cost is 2x the bytes for uint16
// detectors.
//
// Reading follows LevelDB's reader: a checksum mismatch or an impossible
// length drops the rest of its block (the length itself may be corrupt, so
// what follows cannot be trusted until the next block); fragments without
// their start are dropped; a record cut short by the end of the file (a
// writer killed mid-append) is a torn tail. Each drop is reported as a
// JournalCorruption; everything else reads.
//
// Thread-safety: a FrameJournalWriter is used by one thread. ScanFrameJournal
// and ReadJournalFrameAt may run concurrently with each other and with a
// writer appending to the same file (they only read complete records below
// the size they were given).
//
//   FrameJournalWriter writer = FrameJournalWriter::Create("s/frames.journal", {});
//   writer.AppendSeries(series);
//   const std::uint64_t at = writer.AppendFrame(frame_header, 0, "", pixels);
//   ...
//   JournalScan scan = ScanFrameJournal("s/frames.journal");
//   JournalFrame frame = ReadJournalFrameAt("s/frames.journal", scan.frames[0].offset);

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/frame.hpp"
#include "core/shift.hpp"

namespace livealign {

constexpr std::size_t kJournalBlockBytes = 32768;
constexpr std::size_t kJournalHeaderBytes = 4 + 2 + 1;

// CRC-32C (Castagnoli), as LevelDB's util/crc32c: Crc32c("123456789") is
// 0xE3069283. `crc` continues an earlier value.
std::uint32_t Crc32c(const void* data, std::size_t size, std::uint32_t crc = 0);

// What a restarted daemon needs to continue a series: the series_start as
// received (id, shape, dtype, pixel size, meta, ...).
struct JournalSeries {
  nlohmann::json series;  // the id as sent: a number or a string
  Shape shape;
  PixelType dtype = PixelType::kFloat32;  // the wire dtype (pixels are float32)
  std::optional<double> pixel_size_x_A;
  std::optional<double> pixel_size_y_A;
  std::optional<double> frame_time_s;
  std::optional<std::int64_t> expected_frames;
  nlohmann::json meta;    // the series_start's `meta`, null when absent
  // Several detectors: the channel names (each frame has one record per
  // channel) and the one registered on; empty for a single channel.
  std::vector<std::string> channels;
  std::string register_channel;
  bool implicit = false;  // started by a frame without a series_start

  nlohmann::json ToJson() const;
  // Throws std::invalid_argument for a document that is not one.
  static JournalSeries FromJson(const nlohmann::json& json);
};

// One frame record without its pixels: what the index of a journal holds.
struct JournalFrameEntry {
  frame_id_t index = kInvalidFrameId;       // position in the series (engine index)
  frame_id_t wire_index = kInvalidFrameId;  // index the sender gave it
  std::string channel;                      // "" for a single-channel series
  double timestamp_s = 0;
  Shape shape;
  std::uint64_t offset = 0;  // file offset of the record's first fragment
  // The sender's scan offset of this frame (scan feedback), when it sent one.
  std::optional<Shift> scan_offset_px;
};

// A frame record read back: its entry and pixels.
struct JournalFrame {
  JournalFrameEntry entry;
  std::vector<float> pixels;  // rows*cols, row-major

  // As a Frame with its header (index, timestamp, shape) set: a copy of the
  // pixels, or on an rvalue the pixels themselves.
  Frame ToFrame() const&;
  Frame ToFrame() &&;
};

// One stretch of the file the reader dropped.
struct JournalCorruption {
  std::uint64_t offset = 0;  // where the dropped bytes start
  std::uint64_t bytes = 0;
  std::string reason;        // "checksum mismatch", "torn record at end of file", ...
};

// The result of reading a whole journal.
struct JournalScan {
  std::optional<JournalSeries> series;     // the first series record
  std::vector<JournalFrameEntry> frames;   // in file order
  std::optional<std::string> finished;     // the finish record's reason
  std::vector<JournalCorruption> corruptions;
  std::uint64_t file_bytes = 0;
  // End of the last good record: a writer continuing the journal truncates
  // the file to this (dropping a torn tail) and appends from there.
  std::uint64_t valid_bytes = 0;

  std::uint64_t DroppedBytes() const;
  // One line: "N frames, M corrupt stretch(es) dropped (B bytes): reason at offset".
  std::string Summary() const;
};

// Reads a journal. Throws FileError when the file cannot be opened or read;
// corrupt content never throws (it is reported in `corruptions`).
JournalScan ScanFrameJournal(const std::string& path);
// The same on bytes in memory (what the fuzz target drives).
JournalScan ScanFrameJournalBytes(std::string_view bytes);

// True when the journal's last record is a finish record (reads only the
// file's tail: cheap on a daemon's start, however large the journal).
// Throws FileError when the file cannot be read.
bool FrameJournalFinished(const std::string& path);

// Reads the frame record whose first fragment is at `offset`. Throws
// FileError when the record is not there, is corrupt or is not a frame.
JournalFrame ReadJournalFrameAt(const std::string& path, std::uint64_t offset);
// The same on an open descriptor (pread: safe from several threads at once);
// `path` only names the file in errors. *end (when not null) is the offset
// just past the record's last fragment.
JournalFrame ReadJournalFrameAt(int fd, std::uint64_t offset, const std::string& path,
                                std::uint64_t* end = nullptr);

// Asks the OS to drop [offset, end) of an open journal from its page cache
// (advisory: dirty pages stay; a no-op where unsupported). A session's
// journal is tens of GB that are written once and read back rarely; kept
// in the page cache, every new page of it is memory the kernel must find
// first (on virtual machines whose host backs guest memory lazily, a fault
// on the host per page: 3 ms per MB measured), while dropped pages are
// reused at once.
void DropJournalPages(int fd, std::uint64_t offset, std::uint64_t end);

class FrameJournalWriter {
 public:
  struct Options {
    // fdatasync after every record: the record then survives a power cut or
    // an OS crash, not only the death of the process (which write() alone
    // covers: the data is in the page cache). Costs one disk flush per frame
    // (0.1 ms on NVMe to tens of ms on spinning or network disks).
    bool sync = false;
    // Journal bytes behind the write position left in the OS page cache;
    // older ones are dropped from it once on disk (DropJournalPages), so the
    // cache holds a window of recent frames, not the whole session.
    // 0 leaves everything to the kernel.
    std::uint64_t page_cache_bytes = std::uint64_t{256} << 20;
  };

  // Creates (or empties) `path` for a new series. Throws FileError.
  static FrameJournalWriter Create(const std::string& path, const Options& options);
  // Continues an existing journal after ScanFrameJournal: truncates it to
  // `valid_bytes` (dropping a torn tail) and appends from there.
  static FrameJournalWriter Continue(const std::string& path, std::uint64_t valid_bytes,
                                     const Options& options);

  FrameJournalWriter(FrameJournalWriter&& other) noexcept;
  FrameJournalWriter& operator=(FrameJournalWriter&& other) noexcept;
  FrameJournalWriter(const FrameJournalWriter&) = delete;
  FrameJournalWriter& operator=(const FrameJournalWriter&) = delete;
  ~FrameJournalWriter();

  // Each Append writes one logical record with a single write() and returns
  // the offset of its first fragment. Throws FileError on an I/O failure;
  // the file then may hold a torn record, which a later scan drops.
  std::uint64_t AppendSeries(const JournalSeries& series);
  // `entry.offset` is ignored; `pixels` must have entry.shape's size.
  std::uint64_t AppendFrame(const JournalFrameEntry& entry, FrameView pixels);
  std::uint64_t AppendFinish(const std::string& reason);

  std::uint64_t bytes() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  FrameJournalWriter(std::string path, int fd, std::uint64_t size, const Options& options);
  std::uint64_t AppendRecord(std::string_view record);
  // Starts (does not wait for) the disk write of what was appended since the
  // last call, once that is a few MB.
  void StartWriteback();

  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;  // bytes in the file
  std::uint64_t writeback_started_ = 0;  // bytes whose write-back to disk was started
  std::uint64_t dropped_until_ = 0;      // bytes dropped from the page cache
  Options options_;
  std::string buffer_;  // physical bytes of the record being appended
};

}  // namespace livealign
