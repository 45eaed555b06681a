#include "adapters/npy_reader.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "adapters/file_error.hpp"
#include "adapters/pread_fully.hpp"

namespace livealign {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;
// A frame side longer than this is not a STEM image but a corrupt header; it
// also keeps rows and cols inside Shape's int.
constexpr std::int64_t kMaxSide = 1 << 20;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

FilePtr OpenForReading(const std::string& path, std::uint64_t* size) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw FileError(path, "no such file");
  if (fs::is_directory(status)) throw FileError(path, "is a directory, not a file");
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file) throw FileError(path, std::string("cannot open: ") + std::strerror(errno));
  const std::uintmax_t file_size = fs::file_size(path, ec);
  if (ec) throw FileError(path, "cannot read size: " + ec.message());
  *size = file_size;
  return file;
}

void ReadExactly(std::FILE* file, const std::string& path, void* out, std::size_t n,
                 const char* what) {
  if (std::fread(out, 1, n, file) != n) {
    throw FileError(path, std::string("truncated: file ended while reading ") + what);
  }
}

// --- A parser for the header's Python dict literal ------------------------
// e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (5, 512, 512), }
// Only strings, True/False and tuples of integers are understood; any other
// value (a list for a structured dtype, ...) is kept as raw text.
struct PyValue {
  enum class Kind { kString, kBool, kIntTuple, kOther } kind = Kind::kOther;
  std::string text;                  // kString: the string; kOther: raw text
  bool boolean = false;
  std::vector<std::int64_t> ints;
};

class DictParser {
 public:
  DictParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  std::vector<std::pair<std::string, PyValue>> Parse() {
    std::vector<std::pair<std::string, PyValue>> entries;
    SkipSpace();
    Expect('{');
    while (true) {
      SkipSpace();
      if (Peek() == '}') break;
      std::string key = ParseString();
      SkipSpace();
      Expect(':');
      SkipSpace();
      entries.emplace_back(std::move(key), ParseValue());
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      SkipSpace();
      if (Peek() != '}') Fail("expected ',' or '}'");
    }
    return entries;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw FileError(path_, "corrupt header: " + what + " at byte " + std::to_string(pos_) +
                               " of \"" + Printable() + "\"");
  }
  std::string Printable() const {
    std::string out;
    for (char c : s_.substr(0, 120)) out += (c >= 32 && c < 127) ? c : '?';
    return out;
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void SkipSpace() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void Expect(char c) {
    if (Peek() != c) Fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string ParseString() {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') Fail("expected a quoted key or string");
    ++pos_;
    const std::size_t end = s_.find(quote, pos_);
    if (end == std::string::npos) Fail("unterminated string");
    std::string out = s_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  PyValue ParseValue() {
    PyValue value;
    const char c = Peek();
    if (c == '\'' || c == '"') {
      value.kind = PyValue::Kind::kString;
      value.text = ParseString();
    } else if (s_.compare(pos_, 4, "True") == 0) {
      value.kind = PyValue::Kind::kBool;
      value.boolean = true;
      pos_ += 4;
    } else if (s_.compare(pos_, 5, "False") == 0) {
      value.kind = PyValue::Kind::kBool;
      pos_ += 5;
    } else if (c == '(') {
      value.kind = PyValue::Kind::kIntTuple;
      ++pos_;
      while (true) {
        SkipSpace();
        if (Peek() == ')') break;
        value.ints.push_back(ParseInt());
        SkipSpace();
        if (Peek() == 'L') ++pos_;  // Python 2 long suffix
        SkipSpace();
        if (Peek() == ',') {
          ++pos_;
        } else if (Peek() != ')') {
          Fail("expected ',' or ')' in shape");
        }
      }
      ++pos_;
    } else {
      // Skip a balanced value up to the next top-level ',' or '}'.
      const std::size_t start = pos_;
      int depth = 0;
      while (pos_ < s_.size()) {
        const char d = s_[pos_];
        if (d == '(' || d == '[' || d == '{') ++depth;
        if (d == ')' || d == ']' || d == '}') {
          if (depth == 0) break;
          --depth;
        }
        if (d == ',' && depth == 0) break;
        ++pos_;
      }
      value.text = s_.substr(start, pos_ - start);
    }
    return value;
  }
  std::int64_t ParseInt() {
    if (Peek() == '-') Fail("negative dimension");
    if (!std::isdigit(static_cast<unsigned char>(Peek()))) Fail("expected an integer");
    std::int64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(Peek()))) {
      if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) Fail("dimension overflows");
      v = v * 10 + (s_[pos_] - '0');
      ++pos_;
    }
    return v;
  }

  const std::string& s_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

struct DtypeInfo {
  const char* code;  // without byte order
  PixelType type;
};
constexpr DtypeInfo kDtypes[] = {
    {"u1", PixelType::kUint8},  {"u2", PixelType::kUint16}, {"u4", PixelType::kUint32},
    {"i2", PixelType::kInt16},  {"i4", PixelType::kInt32},  {"f4", PixelType::kFloat32},
    {"f8", PixelType::kFloat64},
};

std::string JoinDims(const std::vector<std::int64_t>& dims) {
  std::string out;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) out += "x";
    out += std::to_string(dims[i]);
  }
  return out;
}

std::string ShapeTuple(const std::vector<std::int64_t>& dims) {
  std::string out = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(dims[i]);
  }
  return out + (dims.size() == 1 ? ",)" : ")");
}

void ByteSwapInPlace(unsigned char* data, std::size_t n_items, std::size_t item_size) {
  for (std::size_t i = 0; i < n_items; ++i) {
    std::reverse(data + i * item_size, data + (i + 1) * item_size);
  }
}

double PositivePixelSize(const nlohmann::json& value, const std::string& sidecar) {
  if (!value.is_number()) {
    throw FileError(sidecar, "pixel_size_A must be a number or [y, x], got " + value.dump());
  }
  const double v = value.get<double>();
  if (!std::isfinite(v) || v <= 0) {
    throw FileError(sidecar, "pixel_size_A must be positive, got " + value.dump());
  }
  return v;
}

NpyHeader ReadNpyHeaderOfRank(const std::string& path, bool channel_axis);

}  // namespace

NpyHeader ReadNpyHeader(const std::string& path) { return ReadNpyHeaderOfRank(path, false); }

namespace {

// `channel_axis`: the array is 4-D (two leading axes, frames and channels in
// either order); otherwise 2-D or 3-D.
NpyHeader ReadNpyHeaderOfRank(const std::string& path, bool channel_axis) {
  std::uint64_t file_size = 0;
  FilePtr file = OpenForReading(path, &file_size);
  if (file_size == 0) throw FileError(path, "empty file (0 bytes), not an npy file");
  if (file_size < 10) {
    throw FileError(path, "not an npy file: only " + std::to_string(file_size) + " bytes");
  }
  unsigned char prefix[12] = {};
  ReadExactly(file.get(), path, prefix, 10, "the npy preamble");
  if (std::memcmp(prefix, kMagic, kMagicSize) != 0) {
    throw FileError(path, "not an npy file: bad magic (expected \\x93NUMPY)");
  }
  NpyHeader header;
  header.version_major = prefix[6];
  const int minor = prefix[7];
  std::uint64_t header_len = 0;
  std::size_t prefix_len = 0;
  if (header.version_major == 1) {
    header_len = prefix[8] | (prefix[9] << 8);
    prefix_len = 10;
  } else if (header.version_major == 2 || header.version_major == 3) {
    if (file_size < 12) throw FileError(path, "truncated: file ends inside the npy preamble");
    ReadExactly(file.get(), path, prefix + 10, 2, "the npy preamble");
    header_len = std::uint64_t{prefix[8]} | (std::uint64_t{prefix[9]} << 8) |
                 (std::uint64_t{prefix[10]} << 16) | (std::uint64_t{prefix[11]} << 24);
    prefix_len = 12;
  } else {
    throw FileError(path, "unsupported npy format version " +
                              std::to_string(header.version_major) + "." + std::to_string(minor) +
                              " (supported: 1.0, 2.0, 3.0)");
  }
  if (header_len > file_size - prefix_len) {
    throw FileError(path, "truncated header: preamble says " + std::to_string(header_len) +
                              " header bytes, file holds " +
                              std::to_string(file_size - prefix_len) + " after the preamble");
  }
  std::string text(static_cast<std::size_t>(header_len), '\0');
  ReadExactly(file.get(), path, text.data(), text.size(), "the npy header");
  header.data_offset = prefix_len + static_cast<std::size_t>(header_len);

  bool have_descr = false, have_order = false, have_shape = false;
  bool fortran_order = false;
  for (auto& [key, value] : DictParser(text, path).Parse()) {
    if (key == "descr") {
      have_descr = true;
      if (value.kind != PyValue::Kind::kString) {
        throw FileError(path, "unsupported dtype: structured dtype " + value.text +
                                  " (supported: u1 u2 u4 i2 i4 f4 f8)");
      }
      header.descr = value.text;
    } else if (key == "fortran_order") {
      if (value.kind != PyValue::Kind::kBool) throw FileError(path, "corrupt header: fortran_order is not True/False");
      have_order = true;
      fortran_order = value.boolean;
    } else if (key == "shape") {
      if (value.kind != PyValue::Kind::kIntTuple) throw FileError(path, "corrupt header: shape is not a tuple of integers");
      have_shape = true;
      header.dims = value.ints;
    }
  }
  if (!have_descr || !have_order || !have_shape) {
    throw FileError(path, "corrupt header: missing 'descr', 'fortran_order' or 'shape'");
  }

  // dtype: byte order + kind/size code.
  const std::string& d = header.descr;
  bool type_ok = false;
  std::size_t item_size = 0;
  if (d.size() == 3 && (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=')) {
    for (const auto& info : kDtypes) {
      if (d.compare(1, 2, info.code) == 0) {
        header.type = info.type;
        item_size = PixelTypeSize(info.type);
        // '|' means "not applicable" and is only valid for 1-byte items.
        header.big_endian = d[0] == '>' && item_size > 1;
        type_ok = d[0] != '|' || item_size == 1;
        break;
      }
    }
  }
  if (!type_ok) {
    throw FileError(path, "unsupported dtype '" + d + "' (supported: u1 u2 u4 i2 i4 f4 f8, "
                              "little- or big-endian)");
  }
  if (fortran_order) {
    throw FileError(path, "unsupported: fortran_order is True (only C-order arrays are read; "
                          "save with numpy.ascontiguousarray)");
  }
  if (channel_axis && header.dims.size() != 4) {
    throw FileError(path, "unsupported shape " + ShapeTuple(header.dims) +
                              " with a channel axis: expected 4 axes, e.g. (frames, channels, "
                              "rows, cols)");
  }
  if (!channel_axis && header.dims.size() != 2 && header.dims.size() != 3) {
    throw FileError(path, "unsupported shape " + ShapeTuple(header.dims) +
                              ": expected (rows, cols) or (frames, rows, cols)");
  }
  for (std::int64_t dim : header.dims) {
    if (dim == 0) throw FileError(path, "empty array: shape " + ShapeTuple(header.dims));
  }
  const std::size_t n = header.dims.size();
  if (header.dims[n - 1] > kMaxSide || header.dims[n - 2] > kMaxSide ||
      (n == 3 && header.dims[0] > std::numeric_limits<int>::max()) ||
      (n == 4 && (header.dims[0] > kMaxSide || header.dims[1] > kMaxSide ||
                  header.dims[0] * header.dims[1] > std::numeric_limits<int>::max()))) {
    throw FileError(path, "absurd shape " + ShapeTuple(header.dims) + " (frame sides are limited to " +
                              std::to_string(kMaxSide) + ")");
  }
  // Product with overflow detection; any product beyond the file size is
  // already an error, so the check is against the file size.
  const std::uint64_t available = file_size - header.data_offset;
  std::uint64_t needed = item_size;
  bool overflow = false;
  for (std::int64_t dim : header.dims) {
    if (needed > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(dim)) {
      overflow = true;
      break;
    }
    needed *= static_cast<std::uint64_t>(dim);
  }
  const std::string what = JoinDims(header.dims) + " " + d;
  if (overflow) {
    throw FileError(path, "absurd shape: header says " + what +
                              " (more bytes than fit in 64 bits), file holds " +
                              std::to_string(available) + " bytes of data");
  }
  if (needed > available) {
    throw FileError(path, "truncated: header says " + what + " (" + std::to_string(needed) +
                              " bytes), file holds " + std::to_string(available) + " bytes");
  }
  if (needed < available) {
    throw FileError(path, "corrupt: header says " + what + " (" + std::to_string(needed) +
                              " bytes), file holds " + std::to_string(available) +
                              " bytes (trailing data)");
  }
  header.data_bytes = static_cast<std::size_t>(needed);
  return header;
}

}  // namespace

void ReadNpySidecarPixelSize(const std::string& npy_path, FrameStack* stack) {
  const std::string sidecar = fs::path(npy_path).replace_extension(".json").string();
  std::error_code ec;
  if (!fs::is_regular_file(sidecar, ec)) return;
  std::ifstream in(sidecar);
  if (!in) throw FileError(sidecar, "cannot open sidecar");
  nlohmann::json doc;
  try {
    in >> doc;
  } catch (const nlohmann::json::exception& e) {
    throw FileError(sidecar, std::string("sidecar is not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) throw FileError(sidecar, "sidecar is not a JSON object");
  const auto it = doc.find("pixel_size_A");
  if (it == doc.end() || it->is_null()) return;
  if (it->is_array()) {
    if (it->size() != 2) {
      throw FileError(sidecar, "pixel_size_A must be a number or [y, x], got " + it->dump());
    }
    const double y = PositivePixelSize((*it)[0], sidecar);
    const double x = PositivePixelSize((*it)[1], sidecar);
    stack->pixel_size_A = x;
    if (y != x) stack->pixel_size_y_A = y;
    return;
  }
  stack->pixel_size_A = PositivePixelSize(*it, sidecar);
}

struct NpyFrameReader::Impl {
  std::string path;
  NpyHeader header;
  FrameStack calibration;
  FilePtr file;
  std::vector<unsigned char> buffer;  // one frame of file bytes (not used for <f4)
  int next = 0;
};

NpyFrameReader::NpyFrameReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = path;
  m.header = ReadNpyHeader(path);
  std::uint64_t file_size = 0;
  m.file = OpenForReading(path, &file_size);
  if (file_size != m.header.data_offset + m.header.data_bytes) {
    throw FileError(path, "file changed while reading (size " + std::to_string(file_size) + ")");
  }
  if (std::fseek(m.file.get(), static_cast<long>(m.header.data_offset), SEEK_SET) != 0) {
    throw FileError(path, "cannot seek to the pixel data");
  }
  m.calibration.source = path;
  ReadNpySidecarPixelSize(path, &m.calibration);
}

NpyFrameReader::~NpyFrameReader() = default;
NpyFrameReader::NpyFrameReader(NpyFrameReader&&) noexcept = default;
NpyFrameReader& NpyFrameReader::operator=(NpyFrameReader&&) noexcept = default;

const NpyHeader& NpyFrameReader::header() const { return impl_->header; }
const FrameStack& NpyFrameReader::calibration() const { return impl_->calibration; }

namespace {

// Frame `index` of the stack `header` describes, its file bytes read by
// read(out, n): straight into the frame's pixels when they are little-endian
// float32 already (no second copy), else through `buffer`, byte-swapped and
// converted.
template <typename Read>
Frame DecodeFrame(const NpyHeader& header, int index, std::vector<unsigned char>* buffer, Read read) {
  const Shape shape = header.frame_shape();
  const std::size_t item_size = PixelTypeSize(header.type);
  const std::size_t frame_items = static_cast<std::size_t>(shape.Pixels());
  FrameHeader frame_header;
  frame_header.index = index;
  if (header.type == PixelType::kFloat32 && !header.big_endian) {
    Frame frame(shape, frame_header);
    read(frame.data(), frame_items * item_size);
    return frame;
  }
  buffer->resize(frame_items * item_size);
  read(buffer->data(), buffer->size());
  if (header.big_endian) ByteSwapInPlace(buffer->data(), frame_items, item_size);
  return ConvertToFloat(buffer->data(), buffer->size(), header.type, shape, frame_header);
}

}  // namespace

std::optional<Frame> NpyFrameReader::Next() {
  Impl& m = *impl_;
  if (m.next >= m.header.frame_count()) return std::nullopt;
  Frame frame = DecodeFrame(m.header, m.next, &m.buffer, [&](void* out, std::size_t n) {
    ReadExactly(m.file.get(), m.path, out, n, "pixel data");
  });
  ++m.next;
  return frame;
}

Frame NpyFrameReader::ReadAt(int index) const {
  const Impl& m = *impl_;
  if (index < 0 || index >= m.header.frame_count()) {
    throw std::out_of_range(m.path + ": no frame " + std::to_string(index) + " (the stack has " +
                            std::to_string(m.header.frame_count()) + ")");
  }
  const std::size_t frame_bytes =
      static_cast<std::size_t>(m.header.frame_shape().Pixels()) * PixelTypeSize(m.header.type);
  const std::uint64_t offset = m.header.data_offset + static_cast<std::uint64_t>(index) * frame_bytes;
  std::vector<unsigned char> buffer;  // this call's own: ReadAt runs on several threads
  return DecodeFrame(m.header, index, &buffer, [&](void* out, std::size_t n) {
    if (PreadFully(fileno(m.file.get()), offset, n, static_cast<char*>(out)) == n) return;
    if (errno != 0) {
      throw FileError(m.path, "cannot read frame " + std::to_string(index) + ": " + std::strerror(errno));
    }
    throw FileError(m.path, "truncated: file ended while reading frame " + std::to_string(index));
  });
}

FrameStack ReadNpy(const std::string& path) {
  NpyFrameReader reader(path);
  FrameStack stack;
  stack.source = path;
  stack.pixel_size_A = reader.calibration().pixel_size_A;
  stack.pixel_size_y_A = reader.calibration().pixel_size_y_A;
  stack.frames.reserve(static_cast<std::size_t>(reader.header().frame_count()));
  while (std::optional<Frame> frame = reader.Next()) stack.frames.push_back(std::move(*frame));
  return stack;
}

}  // namespace livealign

namespace livealign {

std::vector<FrameStack> ReadNpyChannels(const std::string& path, int channel_axis) {
  if (channel_axis != 0 && channel_axis != 1) {
    throw FileError(path, "--channel-axis must be 0 or 1 (the last two axes are rows and cols), not " +
                              std::to_string(channel_axis));
  }
  const NpyHeader header = ReadNpyHeaderOfRank(path, true);
  std::uint64_t file_size = 0;
  FilePtr file = OpenForReading(path, &file_size);
  if (file_size != header.data_offset + header.data_bytes) {
    throw FileError(path, "file changed while reading (size " + std::to_string(file_size) + ")");
  }
  if (std::fseek(file.get(), static_cast<long>(header.data_offset), SEEK_SET) != 0) {
    throw FileError(path, "cannot seek to the pixel data");
  }
  const int channels = static_cast<int>(header.dims[static_cast<std::size_t>(channel_axis)]);
  const int frames = static_cast<int>(header.dims[static_cast<std::size_t>(1 - channel_axis)]);
  const Shape shape{static_cast<int>(header.dims[2]), static_cast<int>(header.dims[3])};
  std::vector<FrameStack> stacks(static_cast<std::size_t>(channels));
  for (FrameStack& stack : stacks) {
    stack.source = path;
    stack.frames.resize(static_cast<std::size_t>(frames));
  }
  const std::size_t item_size = PixelTypeSize(header.type);
  const std::size_t frame_items = static_cast<std::size_t>(shape.Pixels());
  std::vector<unsigned char> buffer(frame_items * item_size);
  // C order: the images follow each other in the order of the two leading axes.
  for (int a = 0; a < static_cast<int>(header.dims[0]); ++a) {
    for (int b = 0; b < static_cast<int>(header.dims[1]); ++b) {
      ReadExactly(file.get(), path, buffer.data(), buffer.size(), "pixel data");
      if (header.big_endian) ByteSwapInPlace(buffer.data(), frame_items, item_size);
      const int frame = channel_axis == 0 ? b : a;
      const int channel = channel_axis == 0 ? a : b;
      FrameHeader frame_header;
      frame_header.index = frame;
      stacks[static_cast<std::size_t>(channel)].frames[static_cast<std::size_t>(frame)] =
          ConvertToFloat(buffer.data(), buffer.size(), header.type, shape, frame_header);
    }
  }
  for (FrameStack& stack : stacks) ReadNpySidecarPixelSize(path, &stack);
  return stacks;
}

}  // namespace livealign
