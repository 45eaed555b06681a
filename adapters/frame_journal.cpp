#include "adapters/frame_journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "adapters/file_error.hpp"
#include "adapters/pread_fully.hpp"

namespace livealign {
namespace {

enum FragmentType : std::uint8_t { kFull = 1, kFirst = 2, kMiddle = 3, kLast = 4 };

constexpr char kSeriesKind = 'S';
constexpr char kFrameKind = 'F';
constexpr char kFinishKind = 'E';
constexpr char kFrameMetaKind = 'M';
// kind + index + wire_index + timestamp + rows + cols + channel length.
constexpr std::size_t kFrameFixedBytes = 1 + 8 + 8 + 8 + 4 + 4 + 2;
constexpr std::uint32_t kMaskDelta = 0xa282ead8u;

// --- CRC-32C ---------------------------------------------------------------

std::array<std::uint32_t, 256> MakeCrcTable() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    table[i] = c;
  }
  return table;
}

std::uint32_t Crc32cSoftware(const unsigned char* p, std::size_t n, std::uint32_t state) {
  static const std::array<std::uint32_t, 256> table = MakeCrcTable();
  for (std::size_t i = 0; i < n; ++i) state = table[(state ^ p[i]) & 0xff] ^ (state >> 8);
  return state;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The SSE4.2 crc32 instruction: about 20x the table's speed, which matters
// for 16 MB frames.
__attribute__((target("sse4.2"))) std::uint32_t Crc32cHardware(const unsigned char* p,
                                                               std::size_t n,
                                                               std::uint32_t state) {
  std::uint64_t s = state;
  while (n >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    s = __builtin_ia32_crc32di(s, word);
    p += 8;
    n -= 8;
  }
  std::uint32_t s32 = static_cast<std::uint32_t>(s);
  while (n > 0) {
    s32 = __builtin_ia32_crc32qi(s32, *p++);
    --n;
  }
  return s32;
}
bool HaveHardwareCrc() {
  static const bool have = __builtin_cpu_supports("sse4.2");
  return have;
}
#endif

std::uint32_t Mask(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

// CRC of the type byte followed by the payload, as stored in a header.
std::uint32_t FragmentCrc(std::uint8_t type, const char* payload, std::size_t n) {
  return Mask(Crc32c(payload, n, Crc32c(&type, 1)));
}

// --- little-endian coding ----------------------------------------------------

template <typename T>
void PutFixed(std::string* out, T value) {
  static_assert(std::is_trivially_copyable<T>::value, "");
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // x86-64 and aarch64 are little-endian
  out->append(bytes, sizeof(T));
}

template <typename T>
T GetFixed(const char* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

// --- logical record decoding -------------------------------------------------

// Decodes a frame record's header; false (with a reason) when it is not a
// well-formed frame record.
bool DecodeFrameEntry(std::string_view record, JournalFrameEntry* entry, std::string* reason) {
  if (record.size() < kFrameFixedBytes || record[0] != kFrameKind) {
    *reason = "frame record too short";
    return false;
  }
  const char* p = record.data() + 1;
  entry->index = GetFixed<std::int64_t>(p);
  entry->wire_index = GetFixed<std::int64_t>(p + 8);
  entry->timestamp_s = GetFixed<double>(p + 16);
  entry->shape.rows = GetFixed<std::int32_t>(p + 24);
  entry->shape.cols = GetFixed<std::int32_t>(p + 28);
  const std::size_t channel_bytes = GetFixed<std::uint16_t>(p + 32);
  if (entry->shape.rows <= 0 || entry->shape.cols <= 0) {
    *reason = "frame record with an empty shape";
    return false;
  }
  const std::uint64_t pixel_bytes = static_cast<std::uint64_t>(entry->shape.Pixels()) * 4;
  if (record.size() != kFrameFixedBytes + channel_bytes + pixel_bytes) {
    *reason = "frame record size does not match its shape";
    return false;
  }
  entry->channel.assign(record.data() + kFrameFixedBytes, channel_bytes);
  return true;
}

// Reads bytes [offset, offset + n) of the journal; returns how many it got.
using ReadFn = std::function<std::size_t(std::uint64_t offset, std::size_t n, char* out)>;

// The LevelDB-style sequential reader over `read`, `size` bytes long.
class Scanner {
 public:
  Scanner(ReadFn read, std::uint64_t size) : read_(std::move(read)), size_(size) {}

  JournalScan Run() {
    scan_.file_bytes = size_;
    std::string block(kJournalBlockBytes, '\0');
    for (std::uint64_t block_start = 0; block_start < size_; block_start += kJournalBlockBytes) {
      const std::size_t block_len = static_cast<std::size_t>(
          std::min<std::uint64_t>(kJournalBlockBytes, size_ - block_start));
      if (read_(block_start, block_len, &block[0]) != block_len) {
        Drop(block_start, size_ - block_start, "read error");
        return Finish();
      }
      ScanBlock(block.data(), block_len, block_start);
    }
    return Finish();
  }

 private:
  void ScanBlock(const char* block, std::size_t block_len, std::uint64_t block_start) {
    std::size_t pos = 0;
    while (pos < block_len) {
      const std::uint64_t here = block_start + pos;
      const std::size_t remaining = block_len - pos;
      if (remaining < kJournalHeaderBytes) {
        // A full block's tail is padding; a short one ends the file mid-header.
        if (block_len < kJournalBlockBytes) Torn(here);
        return;
      }
      const char* header = block + pos;
      const std::uint32_t stored_crc = GetFixed<std::uint32_t>(header);
      const std::size_t length = GetFixed<std::uint16_t>(header + 4);
      const std::uint8_t type = static_cast<std::uint8_t>(header[6]);
      if (kJournalHeaderBytes + length > remaining) {
        if (here + kJournalHeaderBytes + length > size_) {
          Torn(here);  // the writer died in the middle of this fragment
        } else {
          DropRestOfBlock(here, block_start + block_len, "bad record length");
        }
        return;
      }
      if (FragmentCrc(type, header + kJournalHeaderBytes, length) != stored_crc) {
        // The length may be what is corrupt: nothing after it in this block
        // can be trusted.
        DropRestOfBlock(here, block_start + block_len, "checksum mismatch");
        return;
      }
      const std::string_view payload(header + kJournalHeaderBytes, length);
      const std::uint64_t end = here + kJournalHeaderBytes + length;
      pos += kJournalHeaderBytes + length;
      switch (type) {
        case kFull:
          AbandonPartial("record without its last fragment");
          Emit(payload, here, end);
          break;
        case kFirst:
          AbandonPartial("record without its last fragment");
          in_record_ = true;
          record_start_ = here;
          scratch_.assign(payload.data(), payload.size());
          break;
        case kMiddle:
        case kLast:
          if (!in_record_) {
            Drop(here, end - here, "fragment without the start of its record");
            break;
          }
          scratch_.append(payload.data(), payload.size());
          if (type == kLast) {
            in_record_ = false;
            Emit(scratch_, record_start_, end);
            scratch_.clear();
          }
          break;
        default:
          AbandonPartial("record without its last fragment");
          Drop(here, end - here, "unknown fragment type " + std::to_string(type));
          break;
      }
    }
  }

  void Emit(std::string_view record, std::uint64_t offset, std::uint64_t end) {
    scan_.valid_bytes = end;
    if (record.empty()) {
      Drop(offset, end - offset, "empty record");
      return;
    }
    std::string reason;
    switch (record[0]) {
      case kFrameKind: {
        JournalFrameEntry entry;
        if (!DecodeFrameEntry(record, &entry, &reason)) {
          Drop(offset, end - offset, reason);
          return;
        }
        entry.offset = offset;
        if (auto meta = frame_meta_.find(entry.index); meta != frame_meta_.end()) {
          entry.scan_offset_px = meta->second;
        }
        scan_.frames.push_back(std::move(entry));
        return;
      }
      case kFrameMetaKind: {
        nlohmann::json json = nlohmann::json::parse(record.substr(1), nullptr, false);
        try {
          if (json.is_discarded()) throw std::invalid_argument("not JSON");
          const auto offset_px = json.at("scan_offset_px").get<std::array<double, 2>>();
          frame_meta_[json.at("index").get<frame_id_t>()] = Shift{offset_px[0], offset_px[1]};
        } catch (const std::exception& e) {
          Drop(offset, end - offset, std::string("frame metadata record: ") + e.what());
        }
        return;
      }
      case kSeriesKind:
      case kFinishKind: {
        nlohmann::json json = nlohmann::json::parse(record.substr(1), nullptr, false);
        try {
          if (json.is_discarded()) throw std::invalid_argument("not JSON");
          if (record[0] == kSeriesKind) {
            if (!scan_.series) scan_.series = JournalSeries::FromJson(json);
          } else {
            scan_.finished = json.at("reason").get<std::string>();
          }
        } catch (const std::exception& e) {
          Drop(offset, end - offset,
               std::string(record[0] == kSeriesKind ? "series" : "finish") + " record: " +
                   e.what());
        }
        return;
      }
      default:
        Drop(offset, end - offset, "unknown record kind");
    }
  }

  void AbandonPartial(const std::string& reason) {
    if (!in_record_) return;
    Drop(record_start_, scratch_.size(), reason);
    in_record_ = false;
    scratch_.clear();
  }

  void DropRestOfBlock(std::uint64_t from, std::uint64_t block_end, const std::string& reason) {
    const std::uint64_t start = in_record_ ? record_start_ : from;
    in_record_ = false;
    scratch_.clear();
    Drop(start, block_end - start, reason);
  }

  // The file ends inside a record that starts at `from` (or earlier, when a
  // fragmented record is open).
  void Torn(std::uint64_t from) {
    const std::uint64_t start = in_record_ ? record_start_ : from;
    in_record_ = false;
    scratch_.clear();
    Drop(start, size_ - start, "torn record at end of file");
  }

  void Drop(std::uint64_t offset, std::uint64_t bytes, const std::string& reason) {
    scan_.corruptions.push_back(JournalCorruption{offset, bytes, reason});
  }

  JournalScan Finish() {
    if (in_record_) Torn(record_start_);
    return std::move(scan_);
  }

  ReadFn read_;
  std::uint64_t size_;
  JournalScan scan_;
  // Per-frame metadata by position, from 'M' records (they precede their frames).
  std::map<frame_id_t, Shift> frame_meta_;
  bool in_record_ = false;
  std::uint64_t record_start_ = 0;
  std::string scratch_;
};

int OpenForReading(const std::string& path, std::uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FileError(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw FileError(path, std::string("cannot stat: ") + std::strerror(err));
  }
  *size = static_cast<std::uint64_t>(st.st_size);
  return fd;
}

}  // namespace

void DropJournalPages(int fd, std::uint64_t offset, std::uint64_t end) {
#ifdef POSIX_FADV_DONTNEED
  // The kernel drops only the pages wholly inside the range; the range's
  // end pages go too (they may hold a neighbour's bytes, which costs only
  // a re-read), so that no page at a boundary is left behind for good.
  static const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  offset -= offset % page;
  end += (page - end % page) % page;
  if (end > offset) {
    ::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(end - offset),
                    POSIX_FADV_DONTNEED);
  }
#endif
}

std::uint32_t Crc32c(const void* data, std::size_t size, std::uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (HaveHardwareCrc()) return ~Crc32cHardware(p, size, ~crc);
#endif
  return ~Crc32cSoftware(p, size, ~crc);
}

// --- JournalSeries -------------------------------------------------------------

nlohmann::json JournalSeries::ToJson() const {
  auto optional = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  return nlohmann::json{{"series", series},
                        {"shape", {shape.rows, shape.cols}},
                        {"dtype", PixelTypeName(dtype)},
                        {"pixel_size_x_A", optional(pixel_size_x_A)},
                        {"pixel_size_y_A", optional(pixel_size_y_A)},
                        {"frame_time_s", optional(frame_time_s)},
                        {"expected_frames", optional(expected_frames)},
                        {"meta", meta},
                        {"channels", channels},
                        {"register_channel", register_channel},
                        {"implicit", implicit}};
}

JournalSeries JournalSeries::FromJson(const nlohmann::json& json) {
  try {
    JournalSeries s;
    s.series = json.at("series");
    if (!s.series.is_string() && !s.series.is_number_integer()) {
      throw std::invalid_argument("series id is neither a string nor an integer");
    }
    const nlohmann::json& shape = json.at("shape");
    s.shape = Shape{shape.at(0).get<int>(), shape.at(1).get<int>()};
    if (s.shape.Empty()) throw std::invalid_argument("empty shape");
    const std::optional<PixelType> dtype =
        PixelTypeFromName(json.at("dtype").get<std::string>());
    if (!dtype) throw std::invalid_argument("unknown dtype");
    s.dtype = *dtype;
    auto optional_double = [&](const char* key) {
      const nlohmann::json& v = json.at(key);
      return v.is_null() ? std::optional<double>() : std::optional<double>(v.get<double>());
    };
    s.pixel_size_x_A = optional_double("pixel_size_x_A");
    s.pixel_size_y_A = optional_double("pixel_size_y_A");
    s.frame_time_s = optional_double("frame_time_s");
    const nlohmann::json& expected = json.at("expected_frames");
    if (!expected.is_null()) s.expected_frames = expected.get<std::int64_t>();
    s.meta = json.at("meta");
    s.channels = json.value("channels", std::vector<std::string>{});
    s.register_channel = json.value("register_channel", std::string());
    s.implicit = json.at("implicit").get<bool>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(e.what());
  }
}

// --- JournalFrame / JournalScan ------------------------------------------------

namespace {

FrameHeader HeaderOf(const JournalFrameEntry& entry) {
  FrameHeader header;
  header.index = entry.index;
  header.timestamp_s = entry.timestamp_s;
  header.shape = entry.shape;
  return header;
}

}  // namespace

Frame JournalFrame::ToFrame() const& { return Frame(entry.shape, pixels, HeaderOf(entry)); }

Frame JournalFrame::ToFrame() && { return Frame(entry.shape, std::move(pixels), HeaderOf(entry)); }

std::uint64_t JournalScan::DroppedBytes() const {
  std::uint64_t total = 0;
  for (const JournalCorruption& c : corruptions) total += c.bytes;
  return total;
}

std::string JournalScan::Summary() const {
  std::ostringstream out;
  out << frames.size() << " frame record(s)";
  if (corruptions.empty()) {
    out << ", no corruption";
  } else {
    out << ", " << corruptions.size() << " corrupt stretch(es) dropped (" << DroppedBytes()
        << " bytes): " << corruptions.front().reason << " at offset "
        << corruptions.front().offset;
    if (corruptions.size() > 1) out << ", ...";
  }
  return out.str();
}

// --- reading -------------------------------------------------------------------

JournalScan ScanFrameJournal(const std::string& path) {
  std::uint64_t size = 0;
  const int fd = OpenForReading(path, &size);
  // The scan reads the whole journal once; what it has passed is dropped
  // from the page cache as it goes (DropJournalPages says why).
  constexpr std::uint64_t kDropChunkBytes = std::uint64_t{8} << 20;
  std::uint64_t dropped = 0;
  JournalScan scan =
      Scanner([fd, &dropped](std::uint64_t offset, std::size_t n, char* out) {
        if (offset >= dropped + kDropChunkBytes) {
          DropJournalPages(fd, dropped, offset);
          dropped = offset;
        }
        return PreadFully(fd, offset, n, out);
      },
              size)
          .Run();
  ::close(fd);
  return scan;
}

JournalScan ScanFrameJournalBytes(std::string_view bytes) {
  return Scanner(
             [bytes](std::uint64_t offset, std::size_t n, char* out) {
               if (offset >= bytes.size()) return std::size_t{0};
               const std::size_t got = std::min<std::size_t>(n, bytes.size() - offset);
               std::memcpy(out, bytes.data() + offset, got);
               return got;
             },
             bytes.size())
      .Run();
}

bool FrameJournalFinished(const std::string& path) {
  std::uint64_t size = 0;
  const int fd = OpenForReading(path, &size);
  // A finish record is one FULL fragment ending the file: {"reason": ...}
  // is far shorter than this tail.
  const std::size_t tail = static_cast<std::size_t>(std::min<std::uint64_t>(size, 1024));
  std::string bytes(tail, '\0');
  const std::size_t got = PreadFully(fd, size - tail, tail, &bytes[0]);
  ::close(fd);
  if (got != tail) throw FileError(path, "cannot read its tail");
  for (std::size_t pos = 0; pos + kJournalHeaderBytes < tail; ++pos) {
    const char* header = bytes.data() + pos;
    const std::size_t length = GetFixed<std::uint16_t>(header + 4);
    if (pos + kJournalHeaderBytes + length != tail || header[6] != kFull || length == 0 ||
        header[kJournalHeaderBytes] != kFinishKind) {
      continue;
    }
    const std::uint64_t at = size - tail + pos;
    if ((at % kJournalBlockBytes) + kJournalHeaderBytes + length > kJournalBlockBytes) continue;
    if (FragmentCrc(kFull, header + kJournalHeaderBytes, length) == GetFixed<std::uint32_t>(header)) {
      return true;
    }
  }
  return false;
}

namespace {

// Where the last `bytes` logical bytes of a record end in the file, by the
// writer's layout, when their first fragment is due at `pos`.
std::uint64_t RecordEnd(std::uint64_t pos, std::size_t bytes) {
  while (bytes > 0) {
    const std::size_t in_block = static_cast<std::size_t>(pos % kJournalBlockBytes);
    if (kJournalBlockBytes - in_block < kJournalHeaderBytes) {
      pos += kJournalBlockBytes - in_block;
      continue;
    }
    const std::size_t fragment = std::min(bytes, kJournalBlockBytes - in_block - kJournalHeaderBytes);
    pos += kJournalHeaderBytes + fragment;
    bytes -= fragment;
  }
  return pos;
}

}  // namespace

JournalFrame ReadJournalFrameAt(int fd, std::uint64_t offset, const std::string& path,
                                std::uint64_t* end) {
  auto fail = [&](const std::string& problem) -> FileError {
    return FileError(path, "frame record at offset " + std::to_string(offset) + ": " + problem);
  };
  // Once the first fragment gives the record's size, the rest of it is read
  // in one pread: the disk gets one request instead of two per 32 KiB block,
  // and nothing past the record is asked for (the store reads without the
  // kernel's read-ahead, see JournalFrameStore).
  // Not a std::string: its resize would zero 16 MB only for pread to
  // overwrite them.
  std::unique_ptr<char[]> span;
  std::size_t span_size = 0;
  std::uint64_t span_begin = 0;
  auto read = [&](std::uint64_t at, std::size_t n, char* out) {
    if (at >= span_begin && at + n <= span_begin + span_size) {
      std::memcpy(out, span.get() + (at - span_begin), n);
      return n;
    }
    return PreadFully(fd, at, n, out);
  };
  std::string record;
  std::uint64_t pos = offset;
  bool first = true;
  char header[kJournalHeaderBytes];
  std::string payload;
  while (true) {
    const std::size_t in_block = static_cast<std::size_t>(pos % kJournalBlockBytes);
    if (kJournalBlockBytes - in_block < kJournalHeaderBytes) {
      pos += kJournalBlockBytes - in_block;  // padding
      continue;
    }
    if (read(pos, kJournalHeaderBytes, header) != kJournalHeaderBytes) {
      throw fail("truncated");
    }
    const std::size_t length = GetFixed<std::uint16_t>(header + 4);
    const std::uint8_t type = static_cast<std::uint8_t>(header[6]);
    if (in_block + kJournalHeaderBytes + length > kJournalBlockBytes) throw fail("bad length");
    payload.resize(length);
    if (read(pos + kJournalHeaderBytes, length, &payload[0]) != length) {
      throw fail("truncated");
    }
    if (FragmentCrc(type, payload.data(), length) != GetFixed<std::uint32_t>(header)) {
      throw fail("checksum mismatch");
    }
    const bool starts = type == kFull || type == kFirst;
    if (first != starts || type < kFull || type > kLast) throw fail("not the start of a record");
    if (first && type == kFirst && length >= kFrameFixedBytes && payload[0] == kFrameKind) {
      // The whole record's size is known from its first fragment: one
      // allocation instead of doubling through 16 MB, and one read.
      const std::int64_t rows = GetFixed<std::int32_t>(payload.data() + 25);
      const std::int64_t cols = GetFixed<std::int32_t>(payload.data() + 29);
      const std::size_t channel = GetFixed<std::uint16_t>(payload.data() + 33);
      if (rows > 0 && cols > 0 && rows * cols < (std::int64_t{1} << 31)) {
        const std::size_t bytes = kFrameFixedBytes + channel + static_cast<std::size_t>(rows * cols) * 4;
        record.reserve(bytes);
        if (bytes > length) {
          span_begin = pos + kJournalHeaderBytes + length;
          span_size = static_cast<std::size_t>(RecordEnd(span_begin, bytes - length) - span_begin);
          span.reset(new char[span_size]);
          // A short read (a torn or lying record) leaves the per-fragment
          // reads to find what is wrong.
          if (PreadFully(fd, span_begin, span_size, span.get()) != span_size) span_size = 0;
        }
      }
    }
    record += payload;
    pos += kJournalHeaderBytes + length;
    first = false;
    if (type == kFull || type == kLast) break;
  }
  if (end != nullptr) *end = pos;
  // The record is whole: its read span goes before the pixels are allocated,
  // so that a read holds two copies of a frame at most, not three.
  span.reset();
  JournalFrame frame;
  std::string reason;
  if (!DecodeFrameEntry(record, &frame.entry, &reason)) throw fail(reason);
  frame.entry.offset = offset;
  frame.pixels.resize(static_cast<std::size_t>(frame.entry.shape.Pixels()));
  std::memcpy(frame.pixels.data(), record.data() + kFrameFixedBytes + frame.entry.channel.size(),
              frame.pixels.size() * sizeof(float));
  return frame;
}

JournalFrame ReadJournalFrameAt(const std::string& path, std::uint64_t offset) {
  std::uint64_t size = 0;
  const int fd = OpenForReading(path, &size);
  try {
    JournalFrame frame = ReadJournalFrameAt(fd, offset, path);
    ::close(fd);
    return frame;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

// --- writing -------------------------------------------------------------------

FrameJournalWriter::FrameJournalWriter(std::string path, int fd, std::uint64_t size,
                                       const Options& options)
    : path_(std::move(path)), fd_(fd), size_(size), writeback_started_(size), options_(options) {}

FrameJournalWriter::FrameJournalWriter(FrameJournalWriter&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      size_(other.size_),
      writeback_started_(other.writeback_started_),
      dropped_until_(other.dropped_until_),
      options_(other.options_),
      buffer_(std::move(other.buffer_)) {}

FrameJournalWriter& FrameJournalWriter::operator=(FrameJournalWriter&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
    writeback_started_ = other.writeback_started_;
    dropped_until_ = other.dropped_until_;
    options_ = other.options_;
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

FrameJournalWriter::~FrameJournalWriter() {
  if (fd_ >= 0) ::close(fd_);
}

FrameJournalWriter FrameJournalWriter::Create(const std::string& path, const Options& options) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw FileError(path, std::string("cannot create: ") + std::strerror(errno));
  return FrameJournalWriter(path, fd, 0, options);
}

FrameJournalWriter FrameJournalWriter::Continue(const std::string& path, std::uint64_t valid_bytes,
                                                const Options& options) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw FileError(path, std::string("cannot open: ") + std::strerror(errno));
  if (::ftruncate(fd, static_cast<off_t>(valid_bytes)) != 0) {
    const int err = errno;
    ::close(fd);
    throw FileError(path, std::string("cannot truncate the torn tail: ") + std::strerror(err));
  }
  return FrameJournalWriter(path, fd, valid_bytes, options);
}

std::uint64_t FrameJournalWriter::AppendRecord(std::string_view record) {
  if (fd_ < 0) throw FileError(path_, "journal is closed");
  buffer_.clear();
  // Headers of every fragment plus one block's padding at most.
  buffer_.reserve(record.size() +
                  (record.size() / (kJournalBlockBytes - kJournalHeaderBytes) + 2) *
                      kJournalHeaderBytes * 2);
  std::size_t block_offset = static_cast<std::size_t>(size_ % kJournalBlockBytes);
  std::uint64_t record_offset = 0;
  std::size_t done = 0;
  bool begin = true;
  do {
    const std::size_t leftover = kJournalBlockBytes - block_offset;
    if (leftover < kJournalHeaderBytes) {
      buffer_.append(leftover, '\0');  // a header never straddles blocks
      block_offset = 0;
    }
    if (begin) record_offset = size_ + buffer_.size();
    const std::size_t avail = kJournalBlockBytes - block_offset - kJournalHeaderBytes;
    const std::size_t fragment = std::min(record.size() - done, avail);
    const bool end = done + fragment == record.size();
    const std::uint8_t type = begin && end ? kFull : begin ? kFirst : end ? kLast : kMiddle;
    PutFixed<std::uint32_t>(&buffer_, FragmentCrc(type, record.data() + done, fragment));
    PutFixed<std::uint16_t>(&buffer_, static_cast<std::uint16_t>(fragment));
    buffer_.push_back(static_cast<char>(type));
    buffer_.append(record.data() + done, fragment);
    block_offset += kJournalHeaderBytes + fragment;
    done += fragment;
    begin = false;
  } while (done < record.size());

  std::size_t written = 0;
  while (written < buffer_.size()) {
    const ssize_t w = ::pwrite(fd_, buffer_.data() + written, buffer_.size() - written,
                               static_cast<off_t>(size_ + written));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = errno;
      // Leave no torn record behind where this process can still help it.
      if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
        // The scan on resume drops the torn tail instead.
      }
      throw FileError(path_, std::string("append failed: ") + std::strerror(err));
    }
    written += static_cast<std::size_t>(w);
  }
  if (options_.sync && ::fdatasync(fd_) != 0) {
    throw FileError(path_, std::string("fdatasync failed: ") + std::strerror(errno));
  }
  size_ += buffer_.size();
  StartWriteback();
  return record_offset;
}

void FrameJournalWriter::StartWriteback() {
#ifdef __linux__
  // Without it the kernel lets the journal's dirty pages pile up (16 MB per
  // 2048^2 frame, gigabytes over a session) until its dirty thresholds, and
  // then throttles the writer for as long as flushing them takes. Starting
  // the write-back of every few MB as it is written keeps the dirty set and
  // each append small, as RocksDB's bytes_per_sync does. Asynchronous (no
  // wait for the disk) and advisory: a failure changes nothing about what
  // the journal holds.
  constexpr std::uint64_t kWritebackChunkBytes = std::uint64_t{4} << 20;
  if (!options_.sync && size_ - writeback_started_ >= kWritebackChunkBytes) {
    ::sync_file_range(fd_, static_cast<off64_t>(writeback_started_),
                      static_cast<off64_t>(size_ - writeback_started_), SYNC_FILE_RANGE_WRITE);
    writeback_started_ = size_;
  }
  // What lies a window behind was handed to the disk a window ago: the wait
  // is for its write to end (immediate unless the disk is slower than the
  // frames), after which its pages are clean and can be dropped.
  const std::uint64_t window = options_.page_cache_bytes;
  if (window == 0 || size_ < window || size_ - window < dropped_until_ + kWritebackChunkBytes) return;
  const std::uint64_t keep_from = size_ - window;
  ::sync_file_range(fd_, static_cast<off64_t>(dropped_until_),
                    static_cast<off64_t>(keep_from - dropped_until_),
                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
  DropJournalPages(fd_, dropped_until_, keep_from);
  dropped_until_ = keep_from;
#endif
}

std::uint64_t FrameJournalWriter::AppendSeries(const JournalSeries& series) {
  return AppendRecord(std::string(1, kSeriesKind) + series.ToJson().dump());
}

std::uint64_t FrameJournalWriter::AppendFrame(const JournalFrameEntry& entry, FrameView pixels) {
  if (pixels.shape() != entry.shape || entry.shape.Empty()) {
    throw std::invalid_argument("FrameJournalWriter::AppendFrame: pixels do not match the shape");
  }
  if (entry.channel.size() > 0xffff) {
    throw std::invalid_argument("FrameJournalWriter::AppendFrame: channel name too long");
  }
  if (entry.scan_offset_px) {
    const nlohmann::json meta{
        {"index", entry.index},
        {"scan_offset_px", {entry.scan_offset_px->x, entry.scan_offset_px->y}}};
    AppendRecord(std::string(1, kFrameMetaKind) + meta.dump());
  }
  std::string record;
  const std::size_t pixel_bytes = static_cast<std::size_t>(entry.shape.Pixels()) * sizeof(float);
  record.reserve(kFrameFixedBytes + entry.channel.size() + pixel_bytes);
  record.push_back(kFrameKind);
  PutFixed<std::int64_t>(&record, entry.index);
  PutFixed<std::int64_t>(&record, entry.wire_index);
  PutFixed<double>(&record, entry.timestamp_s);
  PutFixed<std::int32_t>(&record, entry.shape.rows);
  PutFixed<std::int32_t>(&record, entry.shape.cols);
  PutFixed<std::uint16_t>(&record, static_cast<std::uint16_t>(entry.channel.size()));
  record += entry.channel;
  record.append(reinterpret_cast<const char*>(pixels.data()), pixel_bytes);
  return AppendRecord(record);
}

std::uint64_t FrameJournalWriter::AppendFinish(const std::string& reason) {
  return AppendRecord(std::string(1, kFinishKind) + nlohmann::json{{"reason", reason}}.dump());
}

}  // namespace livealign
