#pragma once
// The msgpack wire codec of the live daemon: decoding of inbound messages
// (series_start / frame / series_end headers and the raw pixel part) into typed
// structs, and encoding of the outbound maps (drift, average, quality, event,
// series_end) and control replies. The format is wire protocol v1, specified in
// docs/protocol.md; keep the two in step.
//
// Decoding is strict and cheap (no pixel is touched): every problem throws
// DecodeError with a stable short `code` (the event code of docs/protocol.md)
// and a one-line message. The daemon catches it per message, counts it and goes
// on, like leveldb::log::Reader reporting a corrupt record.
//
// All functions are pure and thread-safe.

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/average_image.hpp"
#include "core/drift_prediction.hpp"
#include "core/frame.hpp"
#include "core/mosaic_preview.hpp"
#include "core/registration_engine.hpp"
#include "core/shift.hpp"
#include "core/shift_matrix.hpp"
#include "core/shift_matrix_view.hpp"
#include "stream/out_message.hpp"

namespace livealign {

constexpr int kProtocolVersion = 1;

// Thrown for an inbound message that does not follow docs/protocol.md.
class DecodeError : public std::runtime_error {
 public:
  DecodeError(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  // One of: bad_parts, bad_msgpack, missing_key, bad_type, unknown_htype,
  // unknown_dtype, bad_shape, too_many_pixels, bad_payload_size, unknown_cmd,
  // bad_channels, unknown_channel.
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// A series id as the sender gave it: an integer or a string. Value type.
struct SeriesId {
  bool is_int = false;
  std::int64_t number = 0;  // when is_int
  std::string text;         // when !is_int

  static SeriesId Int(std::int64_t n) { return SeriesId{true, n, {}}; }
  static SeriesId Str(std::string s) { return SeriesId{false, 0, std::move(s)}; }

  // "17" or the string itself.
  std::string ToString() const;
  // A safe single path component: [A-Za-z0-9._-] kept, anything else '_',
  // never empty, never "." or "..", at most 100 characters.
  std::string DirectoryName() const;
  bool operator==(const SeriesId& o) const {
    return is_int == o.is_int && number == o.number && text == o.text;
  }
  bool operator!=(const SeriesId& o) const { return !(*this == o); }
};

// htype "series_start".
struct SeriesStart {
  SeriesId series;
  Shape shape;
  PixelType dtype = PixelType::kFloat32;
  // pixel_size_A: a number sets both; [y, x] sets them apart.
  std::optional<double> pixel_size_x_A;
  std::optional<double> pixel_size_y_A;
  std::optional<double> frame_time_s;
  std::optional<std::int64_t> expected_frames;
  nlohmann::json meta;  // the `meta` map, null when absent
  // Several detectors (docs/protocol.md, "Channels"): the channel names, in
  // the order of a frame's data parts; empty = one unnamed channel.
  std::vector<std::string> channels{};
  // The channel registered on; "" = the first. Always one of `channels`.
  std::string register_channel{};
};

// At most this many channels per series; names are 1 to kMaxChannelNameLength
// characters of [A-Za-z0-9._-] (they name files: average_<channel>.tif).
constexpr std::size_t kMaxChannels = 16;
constexpr std::size_t kMaxChannelNameLength = 64;
// Whether `name` follows those rules (and does not start with '.').
bool IsValidChannelName(const std::string& name);

// Index in `channels` of the channel a series registers on (0 when
// register_channel is empty or channels is).
std::size_t RegisterChannelIndex(const SeriesStart& start);

// htype "frame". `payload` points into the message part it was decoded from
// and is only valid as long as that part is.
struct FrameMessage {
  SeriesId series;
  frame_id_t index = kInvalidFrameId;
  Shape shape;
  PixelType dtype = PixelType::kFloat32;
  std::optional<double> timestamp_s;
  // The first channel's pixels (the only one without `channels`).
  const void* payload = nullptr;
  std::size_t payload_bytes = 0;
  // As in series_start; a frame has 1 + max(1, channels.size()) parts, the
  // data parts in this order, each rows*cols*itemsize bytes.
  std::vector<std::string> channels{};
  // How far the scan moved its field of view for this frame (scan feedback);
  // the prediction adds it back to the measured shift.
  std::optional<Shift> scan_offset_px{};
};

// htype "series_end".
struct SeriesEnd {
  SeriesId series;
  std::optional<std::int64_t> frames;  // how many the sender says it sent
};

using InboundMessage = std::variant<SeriesStart, FrameMessage, SeriesEnd>;

// Decodes one multipart inbound message. parts[0] is the msgpack header; a
// frame needs exactly one more part per channel (one without `channels`),
// each with rows*cols*itemsize bytes; other
// htypes take exactly one part. Frames (and series starts) whose shape has more
// than max_pixels pixels are refused with "too_many_pixels".
// Throws DecodeError; never reads beyond the given parts.
InboundMessage DecodeInbound(const std::vector<std::string_view>& parts,
                             std::int64_t max_pixels);

// A decoded control request {cmd: "...", token?: "..."}; `matrices_window`
// also carries i0, j0, n (ints).
struct ControlRequest {
  std::string cmd;
  std::string token;  // "" when the request carries none
  ShiftMatrixWindowRequest window;  // for cmd "matrices_window"
};

// Decodes a control request. Throws DecodeError (bad_msgpack, missing_key,
// bad_type, unknown_cmd).
ControlRequest DecodeControl(std::string_view bytes);
// DecodeControl(bytes).cmd.
std::string DecodeControlRequest(std::string_view bytes);

// Converts any msgpack document to JSON (bin becomes a JSON binary value,
// json::get_binary(), which dumps as {"bytes": [...], "subtype": null};
// non-string map keys become their JSON text). For subscribers, tests and
// `meta`. Throws DecodeError("bad_msgpack") on malformed input or trailing bytes.
nlohmann::json MsgpackToJson(std::string_view bytes);

// Sender side (simulate, replay, tests): the inbound header maps. A frame's
// pixels go as the second message part, unchanged.
std::string EncodeSeriesStartHeader(const SeriesStart& start);
std::string EncodeFrameHeader(const FrameMessage& frame);  // payload is not read
std::string EncodeSeriesEndHeader(const SeriesEnd& end);

// ---------------------------------------------------------------------------
// Outbound. Each Encode* returns the complete message: topic, msgpack map and
// (for average) the raw float32 data part.

// Everything the `drift` message carries; arrays run over all accepted frames
// of the series so far, in acceptance order.
struct DriftUpdate {
  SeriesId series;
  frame_id_t frame = kInvalidFrameId;      // wire index of the latest frame
  std::vector<frame_id_t> frame_indices;   // wire index of each accepted frame
  // Every registered frame's estimate, sent as the columns of
  // FrameColumnsJson (adapters/result_json.hpp), as report.json's `frames`.
  std::vector<FrameState> frames;
  double latency_ms = 0;
  // Where the latency went: waiting in the daemon's queue, and AddFrame.
  double queue_ms = 0;
  double engine_ms = 0;
  std::optional<Shift> drift_rate_A_per_s;
  std::optional<Shift> drift_rate_px_per_s;
  // The next frame's predicted shift (core/drift_prediction.hpp).
  DriftPrediction prediction;
  bool final = false;                      // true once the series is finished
};
OutMessage EncodeDrift(const DriftUpdate& drift);

// The `quality` map: the registration's figures, and (when image_quality is
// given) the latest image-quality figures merged in under the keys of
// docs/protocol.md. pixel_size_yx_A is the series' effective pixel size
// [y, x] in Å, sent as nil when unknown. `history`, when given, is sent as
// `quality_history`: how SNR and resolution grew with the number of frames.
OutMessage EncodeQuality(const SeriesId& series, const EngineQuality& quality,
                         const ImageQualityReport* image_quality = nullptr,
                         const std::optional<std::array<double, 2>>& pixel_size_yx_A = std::nullopt,
                         const nlohmann::json* history = nullptr);

// Sends image.full (float32, row-major) with the valid rectangle. `channel`
// names the channel of a several-detector series (key `channel`, and
// `channels`, every channel of the series); "" (one unnamed channel) sends
// neither key.
OutMessage EncodeAverage(const SeriesId& series, int n_frames, const AverageImage& image,
                         const std::string& channel = "",
                         const std::vector<std::string>& channels = {});

// The `mosaic` message: the binned mosaic (core/mosaic_preview.hpp) in the
// form of `average`, its `valid` the best-covered region, plus `bin`,
// `extent`, `window` and `counts` (docs/protocol.md). Channels as
// EncodeAverage. Throws std::invalid_argument for an empty preview.
OutMessage EncodeMosaic(const SeriesId& series, int n_frames, int n_included, const MosaicPreview& preview,
                        const std::string& channel = "",
                        const std::vector<std::string>& channels = {});

// The `frame` message: the latest raw frame in the form of `average` (valid is
// the whole frame) plus `frame`, its wire index. Throws std::invalid_argument
// for an empty frame.
OutMessage EncodeLatestFrame(const SeriesId& series, int n_frames, frame_id_t wire_index,
                             const Frame& frame);

// The `matrices` message: the overview of the shift matrices
// (core/shift_matrix_view.hpp): k, i0, j0, block, n, and x, y (bin, float32
// n*n little-endian, NaN where missing) and status (bin, uint8 n*n: the
// PairStatus values). `matrices_window` is the same map for a window. Throw
// std::invalid_argument when the view's arrays are not n*n.
OutMessage EncodeMatrices(const SeriesId& series, int n_frames, const ShiftMatrixView& overview);
OutMessage EncodeMatricesWindow(const SeriesId& series, int n_frames, const ShiftMatrixView& window);

struct Event {
  std::string level;  // "info", "warning" or "error"
  std::string code;   // stable short code, docs/protocol.md
  std::string message;
  std::optional<SeriesId> series;
  std::optional<frame_id_t> frame;
  std::vector<frame_id_t> missing;  // frame_gap: the missing indices (capped)
  std::int64_t missing_count = 0;   // frame_gap: how many are missing in all

  // Named constructors (the daemon's events are written with these): the
  // level, the stable code, a one-line message and, when known, where.
  static Event Make(std::string level, std::string code, std::string message,
                    std::optional<SeriesId> series = std::nullopt,
                    std::optional<frame_id_t> frame = std::nullopt);
  static Event Info(std::string code, std::string message,
                    std::optional<SeriesId> series = std::nullopt,
                    std::optional<frame_id_t> frame = std::nullopt);
  static Event Warning(std::string code, std::string message,
                       std::optional<SeriesId> series = std::nullopt,
                       std::optional<frame_id_t> frame = std::nullopt);
  static Event Error(std::string code, std::string message,
                     std::optional<SeriesId> series = std::nullopt,
                     std::optional<frame_id_t> frame = std::nullopt);
  // A frame_gap warning at `frame`, `missing_count` frames missing; the
  // caller lists them in `missing` and writes the message.
  static Event FrameGap(SeriesId series, frame_id_t frame, std::int64_t missing_count);
};
OutMessage EncodeEvent(const Event& event);
// An event with extra integer fields of its own (the `resumed` event's
// recovered_frames, ...: docs/protocol.md).
OutMessage EncodeEvent(const Event& event,
                       const std::vector<std::pair<std::string, std::int64_t>>& counts);

struct SeriesEndSummary {
  SeriesId series;
  int n_frames = 0;                    // accepted frames
  std::optional<std::int64_t> frames_sent;  // from the sender's series_end
  std::string reason;                  // "series_end", "series_start", "shutdown", ...
  std::string dir;                     // output directory ("" without --out)
  std::vector<std::string> files;      // files written
  std::string error;                   // non-empty when writing failed
};
OutMessage EncodeSeriesEnd(const SeriesEndSummary& summary);

// Control replies: {ok, error, ...}. `fields` (a JSON object) is merged in.
std::string EncodeReply(bool ok, const std::string& error, const nlohmann::json& fields);

// The snapshot reply: {ok: true, error: "", drift: <map>|nil, quality: <map>|nil,
// average: <map>|nil} where each map is the header of the latest message of
// that topic (msgpack bytes, embedded as they are; empty = nil).
std::string EncodeSnapshotReply(const std::string& drift_header,
                                const std::string& quality_header,
                                const std::string& average_header);

}  // namespace livealign
