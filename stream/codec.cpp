#include "stream/codec.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

#include <msgpack.hpp>

#include "adapters/result_json.hpp"

namespace livealign {
namespace {

// Limits for header documents: headers are small maps; these stop a hostile or
// corrupt header from making the unpacker allocate for a huge declared size.
const msgpack::unpack_limit kHeaderLimit(/*array=*/1 << 20, /*map=*/1 << 16,
                                         /*str=*/1 << 20, /*bin=*/1 << 24,
                                         /*ext=*/1 << 20, /*depth=*/32);

msgpack::object_handle UnpackDocument(std::string_view bytes) {
  if (bytes.empty()) throw DecodeError("bad_msgpack", "empty header");
  std::size_t offset = 0;
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(bytes.data(), bytes.size(), offset, nullptr, nullptr,
                             kHeaderLimit);
  } catch (const std::exception& e) {
    throw DecodeError("bad_msgpack", std::string("header is not msgpack: ") + e.what());
  }
  if (offset != bytes.size()) {
    throw DecodeError("bad_msgpack", "header has " + std::to_string(bytes.size() - offset) +
                                         " trailing bytes after the msgpack document");
  }
  return handle;
}

// A msgpack str as UTF-8: each byte that does not start a valid sequence
// (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF) becomes
// U+FFFD. Wire strings end up in JSON (report.json, status), whose encoder
// throws on invalid UTF-8; found by tests/fuzz/inbound_decoder_fuzz.cpp.
std::string ValidUtf8(const char* data, std::size_t size) {
  std::string out;
  out.reserve(size);
  std::size_t i = 0;
  while (i < size) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(data[i + k]); };
    const unsigned char c = byte(0);
    const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3
                                         : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= size;
    for (std::size_t k = 1; ok && k < len; ++k) ok = (byte(k) & 0xC0) == 0x80;
    if (ok && len > 1) {
      std::uint32_t cp = c & (0x7F >> len);
      for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (byte(k) & 0x3F);
      const std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= smallest[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(data + i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string KeyString(const msgpack::object& key) {
  if (key.type == msgpack::type::STR) return ValidUtf8(key.via.str.ptr, key.via.str.size);
  return {};
}

const msgpack::object* FindKey(const msgpack::object& map, std::string_view name) {
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object_kv& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR &&
        std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == name) {
      return &kv.val;
    }
  }
  return nullptr;
}

const msgpack::object& Require(const msgpack::object& map, std::string_view name,
                               std::string_view htype) {
  const msgpack::object* value = FindKey(map, name);
  if (value == nullptr) {
    throw DecodeError("missing_key", std::string(htype) + " header lacks key '" +
                                         std::string(name) + "'");
  }
  return *value;
}

[[noreturn]] void BadType(std::string_view name, std::string_view want) {
  throw DecodeError("bad_type", "key '" + std::string(name) + "' must be " + std::string(want));
}

bool IsInt(const msgpack::object& o) {
  return o.type == msgpack::type::POSITIVE_INTEGER || o.type == msgpack::type::NEGATIVE_INTEGER;
}

bool IsNumber(const msgpack::object& o) {
  return IsInt(o) || o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64;
}

std::int64_t AsInt(const msgpack::object& o, std::string_view name) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      BadType(name, "an integer within int64");
    }
    return static_cast<std::int64_t>(o.via.u64);
  }
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  BadType(name, "an integer");
}

double AsNumber(const msgpack::object& o, std::string_view name) {
  if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) return o.via.f64;
  if (IsInt(o)) return static_cast<double>(AsInt(o, name));
  BadType(name, "a number");
}

std::string AsString(const msgpack::object& o, std::string_view name) {
  if (o.type != msgpack::type::STR) BadType(name, "a string");
  return ValidUtf8(o.via.str.ptr, o.via.str.size);
}

SeriesId DecodeSeries(const msgpack::object& map, std::string_view htype) {
  const msgpack::object& o = Require(map, "series", htype);
  if (IsInt(o)) return SeriesId::Int(AsInt(o, "series"));
  if (o.type == msgpack::type::STR) return SeriesId::Str(AsString(o, "series"));
  BadType("series", "an integer or a string");
}

Shape DecodeShape(const msgpack::object& map, std::string_view htype, std::int64_t max_pixels) {
  const msgpack::object& o = Require(map, "shape", htype);
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2 || !IsInt(o.via.array.ptr[0]) ||
      !IsInt(o.via.array.ptr[1])) {
    BadType("shape", "[rows, cols] of two integers");
  }
  const std::int64_t rows = AsInt(o.via.array.ptr[0], "shape");
  const std::int64_t cols = AsInt(o.via.array.ptr[1], "shape");
  if (rows <= 0 || cols <= 0) {
    throw DecodeError("bad_shape", "shape [" + std::to_string(rows) + ", " +
                                       std::to_string(cols) + "] is empty or negative");
  }
  // Checked before the product so a huge shape cannot overflow it.
  if (rows > max_pixels || cols > max_pixels || rows * cols > max_pixels) {
    throw DecodeError("too_many_pixels", "shape [" + std::to_string(rows) + ", " +
                                             std::to_string(cols) + "] exceeds --max-pixels " +
                                             std::to_string(max_pixels));
  }
  return Shape{static_cast<int>(rows), static_cast<int>(cols)};
}

PixelType DecodeDtype(const msgpack::object& map, std::string_view htype) {
  const std::string name = AsString(Require(map, "dtype", htype), "dtype");
  const std::optional<PixelType> type = PixelTypeFromName(name);
  if (!type) throw DecodeError("unknown_dtype", "unknown dtype '" + name + "'");
  return *type;
}

std::optional<double> OptionalNumber(const msgpack::object& map, std::string_view name) {
  const msgpack::object* o = FindKey(map, name);
  if (o == nullptr || o->type == msgpack::type::NIL) return std::nullopt;
  return AsNumber(*o, name);
}

std::optional<std::int64_t> OptionalInt(const msgpack::object& map, std::string_view name) {
  const msgpack::object* o = FindKey(map, name);
  if (o == nullptr || o->type == msgpack::type::NIL) return std::nullopt;
  return AsInt(*o, name);
}

// `in_key`: o is (part of) a map key that is not a string. Its JSON text
// becomes the key; inside it, further non-string keys become "<key>" rather
// than JSON text, so the text is escaped at most once
// (nested keys each escaping the one inside doubled the length per level: a
// 104-byte header took seconds; found by tests/fuzz/inbound_decoder_fuzz.cpp).
nlohmann::json ToJson(const msgpack::object& o, bool in_key = false) {
  switch (o.type) {
    case msgpack::type::NIL:
      return nullptr;
    case msgpack::type::BOOLEAN:
      return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER:
      return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      // JSON has no NaN: unknowns become null.
      if (!std::isfinite(o.via.f64)) return nullptr;
      return o.via.f64;
    case msgpack::type::STR:
      return ValidUtf8(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN: {
      // One byte vector, not an array of byte values: a matrices message
      // holds megabytes of bin, and a JSON value per byte made a subscriber
      // that takes every topic (watch, the live benchmark) fall behind.
      const auto* begin = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
      return nlohmann::json::binary(std::vector<std::uint8_t>(begin, begin + o.via.bin.size));
    }
    case msgpack::type::ARRAY: {
      nlohmann::json array = nlohmann::json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        array.push_back(ToJson(o.via.array.ptr[i], in_key));
      }
      return array;
    }
    case msgpack::type::MAP: {
      nlohmann::json map = nlohmann::json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const msgpack::object_kv& kv = o.via.map.ptr[i];
        const std::string key = kv.key.type == msgpack::type::STR ? KeyString(kv.key)
                                : in_key ? std::string("<key>")
                                         : ToJson(kv.key, /*in_key=*/true).dump();
        map[key] = ToJson(kv.val, in_key);
      }
      return map;
    }
    default:
      return nullptr;  // ext types carry nothing we interpret
  }
}

bool IsChannelNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

// The optional `channels` list: names as documented at kMaxChannels, unique.
std::vector<std::string> DecodeChannels(const msgpack::object& map) {
  const msgpack::object* o = FindKey(map, "channels");
  if (o == nullptr || o->type == msgpack::type::NIL) return {};
  if (o->type != msgpack::type::ARRAY || o->via.array.size == 0 ||
      o->via.array.size > kMaxChannels) {
    throw DecodeError("bad_channels", "key 'channels' must be a list of 1 to " +
                                          std::to_string(kMaxChannels) + " names");
  }
  std::vector<std::string> channels;
  for (std::uint32_t i = 0; i < o->via.array.size; ++i) {
    const msgpack::object& item = o->via.array.ptr[i];
    if (item.type != msgpack::type::STR) {
      throw DecodeError("bad_channels", "channel " + std::to_string(i) + " is not a string");
    }
    std::string name(item.via.str.ptr, item.via.str.size);
    if (!IsValidChannelName(name)) {
      throw DecodeError("bad_channels", "channel name '" + name.substr(0, 80) +
                                            "' must be 1 to " +
                                            std::to_string(kMaxChannelNameLength) +
                                            " characters of A-Za-z0-9._- not starting with '.'");
    }
    if (std::find(channels.begin(), channels.end(), name) != channels.end()) {
      throw DecodeError("bad_channels", "channel '" + name + "' is named twice");
    }
    channels.push_back(std::move(name));
  }
  return channels;
}

// An optional [x, y] of finite numbers.
std::optional<Shift> OptionalFiniteShift(const msgpack::object& map, std::string_view name) {
  const msgpack::object* o = FindKey(map, name);
  if (o == nullptr || o->type == msgpack::type::NIL) return std::nullopt;
  if (o->type != msgpack::type::ARRAY || o->via.array.size != 2 || !IsNumber(o->via.array.ptr[0]) ||
      !IsNumber(o->via.array.ptr[1])) {
    BadType(std::string(name), "[x, y] of two numbers");
  }
  const Shift shift{AsNumber(o->via.array.ptr[0], name), AsNumber(o->via.array.ptr[1], name)};
  if (!std::isfinite(shift.x) || !std::isfinite(shift.y)) BadType(std::string(name), "finite");
  return shift;
}

SeriesStart DecodeSeriesStart(const msgpack::object& map, std::int64_t max_pixels) {
  SeriesStart start;
  start.series = DecodeSeries(map, "series_start");
  start.shape = DecodeShape(map, "series_start", max_pixels);
  start.dtype = DecodeDtype(map, "series_start");
  if (const msgpack::object* o = FindKey(map, "pixel_size_A");
      o != nullptr && o->type != msgpack::type::NIL) {
    if (IsNumber(*o)) {
      start.pixel_size_x_A = start.pixel_size_y_A = AsNumber(*o, "pixel_size_A");
    } else if (o->type == msgpack::type::ARRAY && o->via.array.size == 2 &&
               IsNumber(o->via.array.ptr[0]) && IsNumber(o->via.array.ptr[1])) {
      start.pixel_size_y_A = AsNumber(o->via.array.ptr[0], "pixel_size_A");
      start.pixel_size_x_A = AsNumber(o->via.array.ptr[1], "pixel_size_A");
    } else {
      BadType("pixel_size_A", "a number or [y, x]");
    }
    if (!(*start.pixel_size_x_A > 0) || !(*start.pixel_size_y_A > 0) ||
        !std::isfinite(*start.pixel_size_x_A) || !std::isfinite(*start.pixel_size_y_A)) {
      BadType("pixel_size_A", "positive and finite");
    }
  }
  start.frame_time_s = OptionalNumber(map, "frame_time_s");
  start.expected_frames = OptionalInt(map, "expected_frames");
  if (const msgpack::object* o = FindKey(map, "meta"); o != nullptr && o->type != msgpack::type::NIL) {
    if (o->type != msgpack::type::MAP) BadType("meta", "a map");
    start.meta = ToJson(*o);
  }
  start.channels = DecodeChannels(map);
  if (const msgpack::object* o = FindKey(map, "register_channel");
      o != nullptr && o->type != msgpack::type::NIL) {
    start.register_channel = AsString(*o, "register_channel");
    if (std::find(start.channels.begin(), start.channels.end(), start.register_channel) ==
        start.channels.end()) {
      throw DecodeError("unknown_channel", "register_channel '" +
                                               start.register_channel.substr(0, 80) +
                                               "' is not one of the series' channels");
    }
  }
  return start;
}

FrameMessage DecodeFrame(const msgpack::object& map, const std::vector<std::string_view>& parts,
                         std::int64_t max_pixels) {
  FrameMessage frame;
  frame.series = DecodeSeries(map, "frame");
  frame.index = AsInt(Require(map, "frame", "frame"), "frame");
  if (frame.index < 0) BadType("frame", "a non-negative integer");
  frame.shape = DecodeShape(map, "frame", max_pixels);
  frame.dtype = DecodeDtype(map, "frame");
  frame.timestamp_s = OptionalNumber(map, "timestamp_s");
  frame.channels = DecodeChannels(map);
  const std::size_t data_parts = std::max<std::size_t>(1, frame.channels.size());
  frame.scan_offset_px = OptionalFiniteShift(map, "scan_offset_px");
  if (parts.size() != 1 + data_parts) {
    throw DecodeError("bad_parts", "frame " + std::to_string(frame.index) + " has " +
                                       std::to_string(parts.size()) + " message parts, want " +
                                       std::to_string(1 + data_parts) +
                                       " (header, one pixel part per channel)");
  }
  const std::size_t want =
      static_cast<std::size_t>(frame.shape.Pixels()) * PixelTypeSize(frame.dtype);
  for (std::size_t c = 1; c < parts.size(); ++c) {
    if (parts[c].size() != want) {
      throw DecodeError("bad_payload_size",
                        "frame " + std::to_string(frame.index) + " payload " +
                            (frame.channels.empty() ? "" : "of channel " + frame.channels[c - 1] + " ") +
                            "has " + std::to_string(parts[c].size()) +
                            " bytes, shape and dtype say " + std::to_string(want));
    }
  }
  frame.payload = parts[1].data();
  frame.payload_bytes = parts[1].size();
  return frame;
}

// --- encoding helpers -------------------------------------------------------

using Packer = msgpack::packer<msgpack::sbuffer>;

void PackKey(Packer& p, std::string_view key) {
  p.pack_str(static_cast<std::uint32_t>(key.size()));
  p.pack_str_body(key.data(), static_cast<std::uint32_t>(key.size()));
}

void PackString(Packer& p, std::string_view s) {
  p.pack_str(static_cast<std::uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

// A msgpack bin of `bytes` bytes from `data`.
void PackBin(Packer& p, const void* data, std::size_t bytes) {
  p.pack_bin(static_cast<std::uint32_t>(bytes));
  p.pack_bin_body(static_cast<const char*>(data), static_cast<std::uint32_t>(bytes));
}

// "shape": [rows, cols].
void PackShape(Packer& p, Shape shape) {
  PackKey(p, "shape");
  p.pack_array(2);
  p.pack_int(shape.rows);
  p.pack_int(shape.cols);
}

// "channels": [names].
void PackChannels(Packer& p, const std::vector<std::string>& channels) {
  PackKey(p, "channels");
  p.pack_array(static_cast<std::uint32_t>(channels.size()));
  for (const std::string& name : channels) PackString(p, name);
}

void PackSeries(Packer& p, const SeriesId& series) {
  if (series.is_int) {
    p.pack_int64(series.number);
  } else {
    PackString(p, series.text);
  }
}

// NaN and Inf are "unknown" on the wire: nil.
void PackDouble(Packer& p, double value) {
  if (std::isfinite(value)) {
    p.pack_double(value);
  } else {
    p.pack_nil();
  }
}

void PackShiftOrNil(Packer& p, const std::optional<Shift>& shift) {
  if (!shift) {
    p.pack_nil();
    return;
  }
  p.pack_array(2);
  PackDouble(p, shift->x);
  PackDouble(p, shift->y);
}

void PackJson(Packer& p, const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      p.pack_nil();
      break;
    case nlohmann::json::value_t::boolean:
      if (j.get<bool>()) p.pack_true(); else p.pack_false();
      break;
    case nlohmann::json::value_t::number_integer:
      p.pack_int64(j.get<std::int64_t>());
      break;
    case nlohmann::json::value_t::number_unsigned:
      p.pack_uint64(j.get<std::uint64_t>());
      break;
    case nlohmann::json::value_t::number_float:
      PackDouble(p, j.get<double>());
      break;
    case nlohmann::json::value_t::string:
      PackString(p, j.get_ref<const std::string&>());
      break;
    case nlohmann::json::value_t::binary: {
      const auto& bin = j.get_binary();
      PackBin(p, bin.data(), bin.size());
      break;
    }
    case nlohmann::json::value_t::array:
      p.pack_array(static_cast<std::uint32_t>(j.size()));
      for (const auto& item : j) PackJson(p, item);
      break;
    case nlohmann::json::value_t::object:
      p.pack_map(static_cast<std::uint32_t>(j.size()));
      for (const auto& [key, value] : j.items()) {
        PackKey(p, key);
        PackJson(p, value);
      }
      break;
  }
}

std::string ToString(const msgpack::sbuffer& buffer) {
  return std::string(buffer.data(), buffer.size());
}

}  // namespace

bool IsValidChannelName(const std::string& name) {
  return !name.empty() && name.size() <= kMaxChannelNameLength && name.front() != '.' &&
         std::all_of(name.begin(), name.end(), IsChannelNameChar);
}

std::size_t RegisterChannelIndex(const SeriesStart& start) {
  const auto it =
      std::find(start.channels.begin(), start.channels.end(), start.register_channel);
  return it == start.channels.end() ? 0 : static_cast<std::size_t>(it - start.channels.begin());
}

std::string SeriesId::ToString() const { return is_int ? std::to_string(number) : text; }

std::string SeriesId::DirectoryName() const {
  std::string name = ToString();
  for (char& c : name) {
    const bool safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!safe) c = '_';
  }
  if (name.size() > 100) name.resize(100);
  // A leading dot would hide the directory and "."/".." would escape --out.
  if (name.empty() || name.front() == '.') name.insert(name.begin(), '_');
  return name;
}

InboundMessage DecodeInbound(const std::vector<std::string_view>& parts, std::int64_t max_pixels) {
  if (parts.empty()) throw DecodeError("bad_parts", "message has no parts");
  const msgpack::object_handle handle = UnpackDocument(parts[0]);
  const msgpack::object& map = handle.get();
  if (map.type != msgpack::type::MAP) {
    throw DecodeError("bad_msgpack", "header is msgpack but not a map");
  }
  const std::string htype = AsString(Require(map, "htype", "message"), "htype");
  if (htype == "frame") return DecodeFrame(map, parts, max_pixels);
  if (htype != "series_start" && htype != "series_end") {
    throw DecodeError("unknown_htype", "unknown htype '" + htype + "'");
  }
  if (parts.size() != 1) {
    throw DecodeError("bad_parts", htype + " has " + std::to_string(parts.size()) +
                                       " message parts, want 1");
  }
  if (htype == "series_start") return DecodeSeriesStart(map, max_pixels);
  SeriesEnd end;
  end.series = DecodeSeries(map, "series_end");
  end.frames = OptionalInt(map, "frames");
  return end;
}

ControlRequest DecodeControl(std::string_view bytes) {
  const msgpack::object_handle handle = UnpackDocument(bytes);
  const msgpack::object& map = handle.get();
  if (map.type != msgpack::type::MAP) throw DecodeError("bad_msgpack", "request is not a map");
  ControlRequest request;
  request.cmd = AsString(Require(map, "cmd", "request"), "cmd");
  const std::string& cmd = request.cmd;
  if (cmd != "status" && cmd != "snapshot" && cmd != "save" && cmd != "reset" &&
      cmd != "shutdown" && cmd != "matrices_window") {
    throw DecodeError("unknown_cmd", "unknown cmd '" + cmd + "'");
  }
  if (const msgpack::object* token = FindKey(map, "token")) request.token = AsString(*token, "token");
  if (cmd == "matrices_window") {
    // Only the type here; whether the window fits the series is the series
    // thread's to say (it knows k).
    auto field = [&](const char* name) {
      const std::int64_t value = AsInt(Require(map, name, "matrices_window"), name);
      if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max()) {
        BadType(name, "an integer within int32");
      }
      return static_cast<int>(value);
    };
    request.window = ShiftMatrixWindowRequest{field("i0"), field("j0"), field("n")};
  }
  return request;
}

std::string DecodeControlRequest(std::string_view bytes) { return DecodeControl(bytes).cmd; }

nlohmann::json MsgpackToJson(std::string_view bytes) {
  const msgpack::object_handle handle = UnpackDocument(bytes);
  return ToJson(handle.get());
}

std::string EncodeSeriesStartHeader(const SeriesStart& start) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  const bool pixel_size = start.pixel_size_x_A && start.pixel_size_y_A;
  p.pack_map(4 + (pixel_size ? 1 : 0) + (start.frame_time_s ? 1 : 0) +
             (start.expected_frames ? 1 : 0) + (start.meta.is_object() ? 1 : 0) +
             (start.channels.empty() ? 0 : 1) + (start.register_channel.empty() ? 0 : 1));
  PackKey(p, "htype");
  PackString(p, "series_start");
  PackKey(p, "series");
  PackSeries(p, start.series);
  PackShape(p, start.shape);
  PackKey(p, "dtype");
  PackString(p, PixelTypeName(start.dtype));
  if (pixel_size) {
    PackKey(p, "pixel_size_A");
    p.pack_array(2);
    p.pack_double(*start.pixel_size_y_A);
    p.pack_double(*start.pixel_size_x_A);
  }
  if (start.frame_time_s) {
    PackKey(p, "frame_time_s");
    p.pack_double(*start.frame_time_s);
  }
  if (start.expected_frames) {
    PackKey(p, "expected_frames");
    p.pack_int64(*start.expected_frames);
  }
  if (start.meta.is_object()) {
    PackKey(p, "meta");
    PackJson(p, start.meta);
  }
  if (!start.channels.empty()) PackChannels(p, start.channels);
  if (!start.register_channel.empty()) {
    PackKey(p, "register_channel");
    PackString(p, start.register_channel);
  }
  return ToString(buffer);
}

std::string EncodeFrameHeader(const FrameMessage& frame) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_map(5 + (frame.timestamp_s ? 1 : 0) + (frame.channels.empty() ? 0 : 1) +
             (frame.scan_offset_px ? 1 : 0));
  PackKey(p, "htype");
  PackString(p, "frame");
  PackKey(p, "series");
  PackSeries(p, frame.series);
  PackKey(p, "frame");
  p.pack_int64(frame.index);
  PackShape(p, frame.shape);
  PackKey(p, "dtype");
  PackString(p, PixelTypeName(frame.dtype));
  if (frame.timestamp_s) {
    PackKey(p, "timestamp_s");
    p.pack_double(*frame.timestamp_s);
  }
  if (!frame.channels.empty()) PackChannels(p, frame.channels);
  if (frame.scan_offset_px) {
    PackKey(p, "scan_offset_px");
    PackShiftOrNil(p, frame.scan_offset_px);
  }
  return ToString(buffer);
}

std::string EncodeSeriesEndHeader(const SeriesEnd& end) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_map(2 + (end.frames ? 1 : 0));
  PackKey(p, "htype");
  PackString(p, "series_end");
  PackKey(p, "series");
  PackSeries(p, end.series);
  if (end.frames) {
    PackKey(p, "frames");
    p.pack_int64(*end.frames);
  }
  return ToString(buffer);
}

OutMessage EncodeDrift(const DriftUpdate& d) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  const nlohmann::json frame_columns = FrameColumnsJson(d.frames);
  p.pack_map(static_cast<std::uint32_t>(12 + 3 + frame_columns.size()));  // + the three prediction keys
  PackKey(p, "series");
  PackSeries(p, d.series);
  PackKey(p, "queue_ms");
  p.pack_double(d.queue_ms);
  PackKey(p, "engine_ms");
  p.pack_double(d.engine_ms);
  PackKey(p, "n_frames");
  p.pack_int64(static_cast<std::int64_t>(d.frames.size()));
  PackKey(p, "frame");
  p.pack_int64(d.frame);
  PackKey(p, "frame_indices");
  p.pack_array(static_cast<std::uint32_t>(d.frame_indices.size()));
  for (frame_id_t i : d.frame_indices) p.pack_int64(i);
  for (const auto& [key, column] : frame_columns.items()) {
    PackKey(p, key);
    PackJson(p, column);
  }
  PackKey(p, "latency_ms");
  p.pack_double(d.latency_ms);
  PackKey(p, "drift_rate_A_per_s");
  PackShiftOrNil(p, d.drift_rate_A_per_s);
  PackKey(p, "drift_rate_px_per_s");
  PackShiftOrNil(p, d.drift_rate_px_per_s);
  // Scan feedback: nil until the trace has two usable frames (sigma: three).
  const DriftPrediction& next = d.prediction;
  PackKey(p, "predicted_shift_px");
  PackShiftOrNil(p, next.valid ? std::optional<Shift>(next.shift_px) : std::nullopt);
  PackKey(p, "predicted_for_frame");
  if (next.for_frame != kInvalidFrameId) p.pack_int64(next.for_frame); else p.pack_nil();
  PackKey(p, "prediction_sigma_px");
  PackDouble(p, next.valid ? next.sigma_px : std::nan(""));
  PackKey(p, "final");
  if (d.final) p.pack_true(); else p.pack_false();
  PackKey(p, "protocol");
  p.pack_int(kProtocolVersion);
  PackKey(p, "topic");
  PackString(p, "drift");
  return OutMessage{"drift", ToString(buffer), {}};
}


OutMessage EncodeQuality(const SeriesId& series, const EngineQuality& q,
                         const ImageQualityReport* image_quality,
                         const std::optional<std::array<double, 2>>& pixel_size_yx_A,
                         const nlohmann::json* history) {
  // The registration and image-quality keys come from their one mapping
  // (adapters/result_json.hpp), as report.json's do.
  const double pixel_x_A = pixel_size_yx_A ? (*pixel_size_yx_A)[1] : 0.0;
  const double pixel_y_A = pixel_size_yx_A ? (*pixel_size_yx_A)[0] : 0.0;
  nlohmann::json m = EngineQualityJson(q, pixel_x_A, pixel_y_A);
  m["pixel_size_A"] = pixel_size_yx_A
                          ? nlohmann::json::array({(*pixel_size_yx_A)[0], (*pixel_size_yx_A)[1]})
                          : nlohmann::json();
  if (image_quality != nullptr) m.update(ImageQualityJson(*image_quality));
  if (history != nullptr) m["quality_history"] = *history;
  m["topic"] = "quality";
  msgpack::sbuffer buffer;
  Packer p(buffer);
  // series first: it is an int or a str as the sender gave it.
  p.pack_map(static_cast<std::uint32_t>(m.size() + 1));
  PackKey(p, "series");
  PackSeries(p, series);
  for (const auto& [key, value] : m.items()) {
    PackKey(p, key);
    PackJson(p, value);
  }
  return OutMessage{"quality", ToString(buffer), {}};
}

namespace {

void PackRect(Packer& p, const AverageImage::Rect& rect) {
  p.pack_array(4);
  p.pack_int(rect.row0);
  p.pack_int(rect.row1);
  p.pack_int(rect.col0);
  p.pack_int(rect.col1);
}

// The keys an image message adds to the common layout: how many, and a
// function packing them.
struct ExtraKeys {
  std::uint32_t count = 0;
  std::function<void(Packer&)> pack;
};

// The image messages (average, frame, mosaic) share one layout
// (docs/protocol.md): series, n_frames, one counter (`count_key`), shape,
// dtype float32, valid rectangle, byte order, topic, then the message's own
// keys (`extra`); the pixels are the data part.
OutMessage EncodeImageMessage(const char* topic, const SeriesId& series, int n_frames,
                              const char* count_key, std::int64_t count, FrameView image,
                              const AverageImage::Rect& valid, const std::string& channel = "",
                              const std::vector<std::string>& channels = {},
                              const ExtraKeys& extra = {}) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_map(8 + (channel.empty() ? 0 : 2) + extra.count);
  if (!channel.empty()) {
    PackKey(p, "channel");
    PackString(p, channel);
    PackChannels(p, channels);
  }
  PackKey(p, "series");
  PackSeries(p, series);
  PackKey(p, "n_frames");
  p.pack_int(n_frames);
  PackKey(p, count_key);
  p.pack_int64(count);
  PackShape(p, image.shape());
  PackKey(p, "dtype");
  PackString(p, "float32");
  PackKey(p, "valid");
  PackRect(p, valid);
  PackKey(p, "byteorder");
  PackString(p, "little");
  PackKey(p, "topic");
  PackString(p, topic);
  if (extra.pack) extra.pack(p);
  // float32 in host order; every platform we build on is little-endian.
  std::string data(reinterpret_cast<const char*>(image.data()),
                   static_cast<std::size_t>(image.shape().Pixels()) * sizeof(float));
  return OutMessage{topic, ToString(buffer), std::move(data)};
}

}  // namespace

OutMessage EncodeAverage(const SeriesId& series, int n_frames, const AverageImage& image,
                         const std::string& channel, const std::vector<std::string>& channels) {
  return EncodeImageMessage("average", series, n_frames, "n_included", image.num_included,
                            image.full, image.valid, channel, channels);
}

OutMessage EncodeLatestFrame(const SeriesId& series, int n_frames, frame_id_t wire_index,
                             const Frame& frame) {
  if (frame.pixels().empty()) throw std::invalid_argument("EncodeLatestFrame: empty frame");
  return EncodeImageMessage("frame", series, n_frames, "frame", wire_index, frame,
                            AverageImage::Rect{0, frame.rows(), 0, frame.cols()});
}

OutMessage EncodeMosaic(const SeriesId& series, int n_frames, int n_included, const MosaicPreview& preview,
                        const std::string& channel, const std::vector<std::string>& channels) {
  if (preview.mean.pixels().empty()) throw std::invalid_argument("EncodeMosaic: empty mosaic");
  if (preview.min_counts.size() != preview.mean.pixels().size()) {
    throw std::invalid_argument("EncodeMosaic: counts do not match the mean");
  }
  ExtraKeys extra;
  extra.count = 4;
  extra.pack = [&](Packer& p) {
    PackKey(p, "bin");
    p.pack_int(preview.bin);
    PackKey(p, "extent");
    PackRect(p, preview.extent);
    PackKey(p, "window");
    PackRect(p, preview.window);
    // uint16 in host order, little-endian like the pixels.
    PackKey(p, "counts");
    PackBin(p, preview.min_counts.data(), preview.min_counts.size() * sizeof(std::uint16_t));
  };
  return EncodeImageMessage("mosaic", series, n_frames, "n_included", n_included, preview.mean,
                            preview.best_covered, channel, channels, extra);
}

namespace {

// The one schema of `matrices` and `matrices_window` (docs/protocol.md).
OutMessage EncodeShiftMatrixView(const char* topic, const SeriesId& series, int n_frames,
                                 const ShiftMatrixView& view) {
  static_assert(sizeof(PairStatus) == 1, "status is sent as one byte per cell");
  const std::size_t cells = static_cast<std::size_t>(view.n) * static_cast<std::size_t>(view.n);
  if (view.n < 0 || view.x.size() != cells || view.y.size() != cells || view.status.size() != cells) {
    throw std::invalid_argument("EncodeMatrices: arrays are not n*n");
  }
  // float32 little-endian (host order; every platform we build on is
  // little-endian); NaN stays NaN here: a bin has no nil.
  auto pack_floats = [&](Packer& p, const std::vector<double>& values) {
    const std::vector<float> floats(values.begin(), values.end());
    PackBin(p, floats.data(), floats.size() * sizeof(float));
  };
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_map(12);
  PackKey(p, "series");
  PackSeries(p, series);
  PackKey(p, "n_frames");
  p.pack_int(n_frames);
  PackKey(p, "k");
  p.pack_int(view.k);
  PackKey(p, "i0");
  p.pack_int(view.i0);
  PackKey(p, "j0");
  p.pack_int(view.j0);
  PackKey(p, "block");
  p.pack_int(view.block);
  PackKey(p, "n");
  p.pack_int(view.n);
  PackKey(p, "x");
  pack_floats(p, view.x);
  PackKey(p, "y");
  pack_floats(p, view.y);
  PackKey(p, "status");
  PackBin(p, view.status.data(), cells);
  PackKey(p, "byteorder");
  PackString(p, "little");
  PackKey(p, "topic");
  PackString(p, topic);
  return OutMessage{topic, ToString(buffer), {}};
}

}  // namespace

OutMessage EncodeMatrices(const SeriesId& series, int n_frames, const ShiftMatrixView& overview) {
  return EncodeShiftMatrixView("matrices", series, n_frames, overview);
}

OutMessage EncodeMatricesWindow(const SeriesId& series, int n_frames, const ShiftMatrixView& window) {
  return EncodeShiftMatrixView("matrices_window", series, n_frames, window);
}

Event Event::Make(std::string level, std::string code, std::string message,
                  std::optional<SeriesId> series, std::optional<frame_id_t> frame) {
  Event event;
  event.level = std::move(level);
  event.code = std::move(code);
  event.message = std::move(message);
  event.series = std::move(series);
  event.frame = frame;
  return event;
}

Event Event::Info(std::string code, std::string message, std::optional<SeriesId> series,
                  std::optional<frame_id_t> frame) {
  return Make("info", std::move(code), std::move(message), std::move(series), frame);
}

Event Event::Warning(std::string code, std::string message, std::optional<SeriesId> series,
                     std::optional<frame_id_t> frame) {
  return Make("warning", std::move(code), std::move(message), std::move(series), frame);
}

Event Event::Error(std::string code, std::string message, std::optional<SeriesId> series,
                   std::optional<frame_id_t> frame) {
  return Make("error", std::move(code), std::move(message), std::move(series), frame);
}

Event Event::FrameGap(SeriesId series, frame_id_t frame, std::int64_t missing_count) {
  Event event = Warning("frame_gap", "", std::move(series), frame);
  event.missing_count = missing_count;
  return event;
}

OutMessage EncodeEvent(const Event& e) { return EncodeEvent(e, {}); }

OutMessage EncodeEvent(const Event& e,
                       const std::vector<std::pair<std::string, std::int64_t>>& counts) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  const bool gap = !e.missing.empty() || e.missing_count > 0;
  p.pack_map(static_cast<std::uint32_t>(6 + (gap ? 2 : 0) + counts.size()));
  for (const auto& [key, value] : counts) {
    PackKey(p, key);
    p.pack_int64(value);
  }
  PackKey(p, "level");
  PackString(p, e.level);
  PackKey(p, "code");
  PackString(p, e.code);
  PackKey(p, "message");
  PackString(p, e.message);
  PackKey(p, "series");
  if (e.series) PackSeries(p, *e.series); else p.pack_nil();
  PackKey(p, "frame");
  if (e.frame) p.pack_int64(*e.frame); else p.pack_nil();
  PackKey(p, "topic");
  PackString(p, "event");
  if (gap) {
    PackKey(p, "missing");
    p.pack_array(static_cast<std::uint32_t>(e.missing.size()));
    for (frame_id_t i : e.missing) p.pack_int64(i);
    PackKey(p, "missing_count");
    p.pack_int64(e.missing_count);
  }
  return OutMessage{"event", ToString(buffer), {}};
}

OutMessage EncodeSeriesEnd(const SeriesEndSummary& s) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_map(8);
  PackKey(p, "series");
  PackSeries(p, s.series);
  PackKey(p, "n_frames");
  p.pack_int(s.n_frames);
  PackKey(p, "frames_sent");
  if (s.frames_sent) p.pack_int64(*s.frames_sent); else p.pack_nil();
  PackKey(p, "reason");
  PackString(p, s.reason);
  PackKey(p, "dir");
  PackString(p, s.dir);
  PackKey(p, "files");
  p.pack_array(static_cast<std::uint32_t>(s.files.size()));
  for (const std::string& f : s.files) PackString(p, f);
  PackKey(p, "error");
  PackString(p, s.error);
  PackKey(p, "topic");
  PackString(p, "series_end");
  return OutMessage{"series_end", ToString(buffer), {}};
}

std::string EncodeReply(bool ok, const std::string& error, const nlohmann::json& fields) {
  nlohmann::json reply = nlohmann::json::object();
  if (fields.is_object()) reply = fields;
  reply["ok"] = ok;
  reply["error"] = error;
  reply["protocol"] = kProtocolVersion;
  msgpack::sbuffer buffer;
  Packer p(buffer);
  PackJson(p, reply);
  return ToString(buffer);
}

std::string EncodeSnapshotReply(const std::string& drift_header,
                                const std::string& quality_header,
                                const std::string& average_header) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_map(6);
  PackKey(p, "ok");
  p.pack_true();
  PackKey(p, "error");
  PackString(p, "");
  PackKey(p, "protocol");
  p.pack_int(kProtocolVersion);
  // A msgpack map value is just the next document, so the stored headers are
  // spliced in unchanged.
  for (const auto& [key, header] :
       {std::pair<const char*, const std::string*>{"drift", &drift_header},
        {"quality", &quality_header},
        {"average", &average_header}}) {
    PackKey(p, key);
    if (header->empty()) {
      p.pack_nil();
    } else {
      buffer.write(header->data(), header->size());
    }
  }
  return ToString(buffer);
}

}  // namespace livealign
