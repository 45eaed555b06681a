// docs/protocol.md is the codec's specification: for every message, the keys
// its tables list are exactly the keys the codec writes. The documented keys
// are parsed from the markdown; the written keys come from encoding real
// messages (a registered simulated series) with every optional part present.
#include <catch2/catch.hpp>

#include <array>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/result_json.hpp"
#include "core/registration_engine.hpp"
#include "core/simulator.hpp"
#include "stream/codec.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using KeySet = std::set<std::string>;

struct ProtocolDoc {
  std::string text;
  // Message name ("drift", "in:series_start", ...) -> first-column keys of
  // the tables of its section.
  std::map<std::string, KeySet> keys;
};

// Sections are "### `name`..." headings; inbound messages are "### `htype:
// "name"`" and become "in:name". Every table row whose first cell holds
// backticked names contributes them ("`shift_x_px`, `shift_y_px`" is two).
ProtocolDoc ParseProtocolDoc(const std::string& path) {
  std::ifstream file(path);
  REQUIRE(file.good());
  std::ostringstream all;
  all << file.rdbuf();
  ProtocolDoc doc;
  doc.text = all.str();
  const std::regex heading(R"(^###\s+`([^`]*)`.*)");
  const std::regex inbound(R"re(htype:\s*"([a-z_]+)")re");
  const std::regex name(R"(`([a-z_A-Z][a-zA-Z0-9_]*)`)");
  std::istringstream lines(doc.text);
  std::string line, section;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (line.rfind("#", 0) == 0) {
      section.clear();
      if (std::regex_match(line, m, heading)) {
        const std::string title = m[1];
        std::smatch in;
        section = std::regex_search(title, in, inbound) ? "in:" + in[1].str() : title;
      }
      continue;
    }
    if (section.empty() || line.rfind("| `", 0) != 0) continue;
    const std::string first_cell = line.substr(1, line.find('|', 1) - 1);
    for (auto it = std::sregex_iterator(first_cell.begin(), first_cell.end(), name);
         it != std::sregex_iterator(); ++it) {
      doc.keys[section].insert((*it)[1]);
    }
  }
  return doc;
}

KeySet Keys(const std::string& msgpack_map) {
  const nlohmann::json map = MsgpackToJson(msgpack_map);
  REQUIRE(map.is_object());
  KeySet keys;
  for (auto it = map.begin(); it != map.end(); ++it) keys.insert(it.key());
  return keys;
}

std::string Join(const KeySet& keys) {
  std::string text;
  for (const std::string& k : keys) text += (text.empty() ? "" : ", ") + k;
  return text;
}

// Both directions at once: what the doc lists and the codec does not write,
// and what the codec writes and the doc does not list.
void CheckSameKeys(const std::string& message, const KeySet& documented, const KeySet& written) {
  KeySet undocumented, unwritten;
  for (const std::string& k : written) {
    if (!documented.count(k)) undocumented.insert(k);
  }
  for (const std::string& k : documented) {
    if (!written.count(k)) unwritten.insert(k);
  }
  CAPTURE(message, Join(documented), Join(written));
  CHECK(Join(undocumented) == "");  // written by the codec, missing in docs/protocol.md
  CHECK(Join(unwritten) == "");     // in docs/protocol.md, never written by the codec
}

TEST_CASE("docs/protocol.md lists exactly the keys the codec writes, for every message",
          "[stream][codec][protocol_doc]") {
  const ProtocolDoc doc = ParseProtocolDoc(testing::SourceFile("docs/protocol.md"));
  // Keys every outbound map carries, and every inbound header, by the doc's
  // own sentences.
  REQUIRE(doc.text.find("Every map also carries `topic`") != std::string::npos);
  REQUIRE(doc.text.find("key `htype` says what it is") != std::string::npos);
  auto documented = [&](const std::string& message, const char* implied) {
    CAPTURE(message);
    REQUIRE(doc.keys.count(message) == 1);
    KeySet keys = doc.keys.at(message);
    keys.insert(implied);
    return keys;
  };

  // A real series: a small simulated crystal, registered and finished.
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  Simulator microscope(sim, 3);
  EngineOptions options;
  options.pixel_size_x_A = options.pixel_size_y_A = 0.244;
  RegistrationEngine engine(options, sim.shape);
  for (int k = 0; k < 8; ++k) engine.AddFrame(microscope.NextFrame());
  const RegistrationResult result = engine.Finish(ResultRequest::Everything());
  const SeriesId series = SeriesId::Str("doc");
  const int n = engine.num_frames();
  const std::vector<std::string> channels{"HAADF", "ABF"};

  SECTION("outbound") {
    DriftUpdate drift;
    drift.series = series;
    drift.frame = n - 1;
    for (const FrameState& f : result.frames) drift.frame_indices.push_back(f.index);
    drift.frames = result.frames;
    drift.drift_rate_px_per_s = result.quality.drift_rate_px_per_s;
    drift.final = true;
    CheckSameKeys("drift", documented("drift", "topic"), Keys(EncodeDrift(drift).header));

    const ImageQualityReport image_quality = engine.ImageQuality();
    const nlohmann::json history = nlohmann::json::array({QualityHistoryEntryJson(image_quality)});
    const OutMessage quality = EncodeQuality(series, result.quality, &image_quality,
                                             std::array<double, 2>{0.244, 0.244}, &history);
    CheckSameKeys("quality", documented("quality", "topic"), Keys(quality.header));

    const OutMessage average = EncodeAverage(series, n, engine.Average(), "ABF", channels);
    CheckSameKeys("average", documented("average", "topic"), Keys(average.header));

    const AverageImage whole = engine.Average();
    const OutMessage mosaic = EncodeMosaic(series, n, whole.num_included,
                                           MakeMosaicPreview(whole, sim.shape, 64), "ABF", channels);
    CheckSameKeys("mosaic", documented("mosaic", "topic"), Keys(mosaic.header));

    const OutMessage frame = EncodeLatestFrame(series, n, n - 1, engine.LatestFrame());
    CheckSameKeys("frame", documented("frame", "topic"), Keys(frame.header));

    const OutMessage matrices = EncodeMatrices(series, n, *result.shift_matrix_view);
    CheckSameKeys("matrices", documented("matrices", "topic"), Keys(matrices.header));
    // "the same keys as `matrices`"
    REQUIRE(doc.text.find("### `matrices_window`") != std::string::npos);
    const ShiftMatrixView window =
        ShiftMatrixViewBuilder::Window(n, {1, 2, 3}).Finish([](int, int) { return false; });
    CheckSameKeys("matrices_window", documented("matrices", "topic"),
                  Keys(EncodeMatricesWindow(series, n, window).header));

    Event gap;
    gap.level = "warning";
    gap.code = "frame_gap";
    gap.message = "frames 3 to 4 missing";
    gap.series = series;
    gap.frame = 5;
    gap.missing = {3, 4};
    gap.missing_count = 2;
    CheckSameKeys("event", documented("event", "topic"), Keys(EncodeEvent(gap).header));

    SeriesEndSummary end;
    end.series = series;
    end.n_frames = n;
    end.frames_sent = n;
    end.reason = "series_end";
    CheckSameKeys("series_end", documented("series_end", "topic"), Keys(EncodeSeriesEnd(end).header));
  }

  SECTION("inbound, every optional key given") {
    SeriesStart start;
    start.series = series;
    start.shape = sim.shape;
    start.dtype = PixelType::kUint16;
    start.pixel_size_x_A = start.pixel_size_y_A = 0.244;
    start.frame_time_s = 0.1;
    start.expected_frames = n;
    start.meta = nlohmann::json{{"microscope", "simulated"}};
    start.channels = channels;
    start.register_channel = "HAADF";
    CheckSameKeys("series_start", documented("in:series_start", "htype"),
                  Keys(EncodeSeriesStartHeader(start)));

    FrameMessage frame;
    frame.series = series;
    frame.index = 0;
    frame.shape = sim.shape;
    frame.dtype = PixelType::kUint16;
    frame.timestamp_s = 12.5;
    frame.channels = channels;
    frame.scan_offset_px = Shift{1, -2};
    CheckSameKeys("frame (in)", documented("in:frame", "htype"), Keys(EncodeFrameHeader(frame)));

    SeriesEnd end;
    end.series = series;
    end.frames = n;
    CheckSameKeys("series_end (in)", documented("in:series_end", "htype"),
                  Keys(EncodeSeriesEndHeader(end)));
  }
}

}  // namespace
}  // namespace livealign
