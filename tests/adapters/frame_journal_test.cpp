#include "adapters/frame_journal.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "adapters/file_error.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

// Pixel (r, c) of frame `index`: distinct per frame and position.
Frame TestFrame(Shape shape, frame_id_t index) {
  FrameHeader header;
  header.index = index;
  header.shape = shape;
  Frame frame(shape, header);
  for (int r = 0; r < shape.rows; ++r) {
    for (int c = 0; c < shape.cols; ++c) {
      frame.at(r, c) = static_cast<float>(index) * 1000.0f + static_cast<float>(r * shape.cols + c) * 0.5f;
    }
  }
  return frame;
}

JournalSeries TestSeries(Shape shape) {
  JournalSeries s;
  s.series = "run-7";
  s.shape = shape;
  s.dtype = PixelType::kUint16;
  s.pixel_size_x_A = 0.5;
  s.pixel_size_y_A = 0.25;
  s.frame_time_s = 0.1;
  s.expected_frames = 40;
  s.meta = nlohmann::json{{"operator", "ab"}, {"kv", 300}};
  return s;
}

JournalFrameEntry EntryFor(frame_id_t index, const std::string& channel, Shape shape) {
  JournalFrameEntry e;
  e.index = index;
  e.wire_index = index + 100;
  e.channel = channel;
  e.timestamp_s = 0.1 * static_cast<double>(index);
  e.shape = shape;
  return e;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
}

// Writes a series record and `n` frames; returns the offsets of the frames.
std::vector<std::uint64_t> WriteJournal(const std::string& path, Shape shape, int n,
                                        bool finish = false) {
  FrameJournalWriter writer = FrameJournalWriter::Create(path, {});
  writer.AppendSeries(TestSeries(shape));
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < n; ++i) {
    offsets.push_back(writer.AppendFrame(EntryFor(i, "", shape), TestFrame(shape, i)));
  }
  if (finish) writer.AppendFinish("series_end");
  return offsets;
}

void RequireFrameEquals(const JournalFrame& got, frame_id_t index, Shape shape) {
  REQUIRE(got.entry.index == index);
  REQUIRE(got.entry.wire_index == index + 100);
  REQUIRE(got.entry.shape == shape);
  REQUIRE(got.entry.timestamp_s == 0.1 * static_cast<double>(index));
  const Frame expected = TestFrame(shape, index);
  REQUIRE(got.pixels == expected.pixels());
}

TEST_CASE("Crc32c matches the Castagnoli check value", "[frame_journal]") {
  REQUIRE(Crc32c("123456789", 9) == 0xE3069283u);
  // Continuing a CRC equals computing it in one go.
  REQUIRE(Crc32c("6789", 4, Crc32c("12345", 5)) == 0xE3069283u);
  REQUIRE(Crc32c("", 0) == 0u);
}

TEST_CASE("A journal reads back what was written", "[frame_journal]") {
  const std::string dir = testing::ScratchDir("frame_journal_round_trip");
  const std::string path = dir + "/frames.journal";
  const Shape shape{5, 7};
  FrameJournalWriter writer = FrameJournalWriter::Create(path, {});
  writer.AppendSeries(TestSeries(shape));
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < 4; ++i) {
    offsets.push_back(writer.AppendFrame(EntryFor(i, "", shape), TestFrame(shape, i)));
    offsets.push_back(writer.AppendFrame(EntryFor(i, "ABF", shape), TestFrame(shape, i + 50)));
  }
  writer.AppendFinish("series_end");

  const JournalScan scan = ScanFrameJournal(path);
  INFO(scan.Summary());
  REQUIRE(scan.corruptions.empty());
  REQUIRE(scan.valid_bytes == scan.file_bytes);
  REQUIRE(scan.file_bytes == writer.bytes());
  REQUIRE(scan.finished == std::optional<std::string>("series_end"));
  REQUIRE(FrameJournalFinished(path));
  REQUIRE(scan.series);
  const JournalSeries& s = *scan.series;
  REQUIRE(s.series == "run-7");
  REQUIRE(s.shape == shape);
  REQUIRE(s.dtype == PixelType::kUint16);
  REQUIRE(s.pixel_size_x_A == std::optional<double>(0.5));
  REQUIRE(s.pixel_size_y_A == std::optional<double>(0.25));
  REQUIRE(s.frame_time_s == std::optional<double>(0.1));
  REQUIRE(s.expected_frames == std::optional<std::int64_t>(40));
  REQUIRE(s.meta == TestSeries(shape).meta);
  REQUIRE_FALSE(s.implicit);

  REQUIRE(scan.frames.size() == 8);
  for (std::size_t k = 0; k < scan.frames.size(); ++k) {
    REQUIRE(scan.frames[k].offset == offsets[k]);
    REQUIRE(scan.frames[k].channel == (k % 2 == 0 ? "" : "ABF"));
  }
  const JournalFrame abf = ReadJournalFrameAt(path, offsets[3]);
  REQUIRE(abf.entry.channel == "ABF");
  REQUIRE(abf.pixels == TestFrame(shape, 51).pixels());
  const JournalFrame plain = ReadJournalFrameAt(path, offsets[2]);
  RequireFrameEquals(plain, 1, shape);
  const Frame as_frame = plain.ToFrame();
  REQUIRE(as_frame.header().index == 1);
  REQUIRE(as_frame.shape() == shape);

  // An offset that is not the start of a frame record is refused.
  REQUIRE_THROWS_AS(ReadJournalFrameAt(path, offsets[2] + 1), FileError);
  REQUIRE_THROWS_AS(ReadJournalFrameAt(path, 0), FileError);  // the series record
  REQUIRE_THROWS_AS(ScanFrameJournal(dir + "/missing.journal"), FileError);
}

TEST_CASE("Records larger than a block are fragmented and read back", "[frame_journal]") {
  const std::string path = testing::ScratchDir("frame_journal_large") + "/frames.journal";
  // 300x300 float32 is 360 kB: a FIRST, ten MIDDLE and a LAST fragment;
  // a 3x3 frame between them lands at varying block offsets.
  const Shape big{300, 300};
  const Shape small{3, 3};
  FrameJournalWriter writer = FrameJournalWriter::Create(path, {});
  writer.AppendSeries(TestSeries(big));
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < 6; ++i) {
    const Shape shape = i % 2 == 0 ? big : small;
    offsets.push_back(writer.AppendFrame(EntryFor(i, "", shape), TestFrame(shape, i)));
  }
  REQUIRE(writer.bytes() > 3 * 360000);
  const JournalScan scan = ScanFrameJournal(path);
  INFO(scan.Summary());
  REQUIRE(scan.corruptions.empty());
  REQUIRE(scan.frames.size() == 6);
  for (int i = 0; i < 6; ++i) {
    REQUIRE(scan.frames[i].offset == offsets[i]);
    RequireFrameEquals(ReadJournalFrameAt(path, offsets[i]), i, i % 2 == 0 ? big : small);
  }
}

TEST_CASE("A record ending within 7 bytes of a block end pads the block", "[frame_journal]") {
  const std::string path = testing::ScratchDir("frame_journal_padding") + "/frames.journal";
  // Choose channel name lengths so that the series record plus one frame
  // record leave 0..7 bytes before the first block boundary.
  const Shape shape{4, 4};
  const std::size_t series_bytes = kJournalHeaderBytes + 1 + TestSeries(shape).ToJson().dump().size();
  const std::size_t frame_fixed = kJournalHeaderBytes + 1 + 8 + 8 + 8 + 4 + 4 + 2 + 64;
  for (std::size_t leave = 0; leave <= 8; ++leave) {
    const std::size_t name_bytes = kJournalBlockBytes - series_bytes - frame_fixed - leave;
    REQUIRE(name_bytes < 0xffff);
    {
      FrameJournalWriter writer = FrameJournalWriter::Create(path, {});
      writer.AppendSeries(TestSeries(shape));
      writer.AppendFrame(EntryFor(0, std::string(name_bytes, 'c'), shape), TestFrame(shape, 0));
      REQUIRE(writer.bytes() == kJournalBlockBytes - leave);
      const std::uint64_t next = writer.AppendFrame(EntryFor(1, "", shape), TestFrame(shape, 1));
      REQUIRE(next == (leave < kJournalHeaderBytes ? kJournalBlockBytes : kJournalBlockBytes - leave));
    }
    const JournalScan scan = ScanFrameJournal(path);
    INFO("leave " << leave << ": " << scan.Summary());
    REQUIRE(scan.corruptions.empty());
    REQUIRE(scan.frames.size() == 2);
    RequireFrameEquals(ReadJournalFrameAt(path, scan.frames[1].offset), 1, shape);
  }
}

TEST_CASE("A torn tail is reported and dropped at every byte of the last record",
          "[frame_journal]") {
  const std::string dir = testing::ScratchDir("frame_journal_torn");
  const std::string path = dir + "/frames.journal";
  const std::string cut = dir + "/cut.journal";
  // The last record spans a block boundary, so the cut falls in a FIRST, in
  // the padding-free boundary and in a LAST fragment.
  const Shape shape{40, 40};  // 6.4 kB per frame
  const std::vector<std::uint64_t> offsets = WriteJournal(path, shape, 6);
  const std::string good = ReadAll(path);
  const std::uint64_t last = offsets.back();
  REQUIRE(last / kJournalBlockBytes != (good.size() - 1) / kJournalBlockBytes);
  for (std::uint64_t size = last; size < good.size(); ++size) {
    WriteAll(cut, good.substr(0, size));
    const JournalScan scan = ScanFrameJournal(cut);
    INFO("cut at " << size << ": " << scan.Summary());
    REQUIRE_FALSE(FrameJournalFinished(cut));
    REQUIRE(scan.frames.size() == 5);
    REQUIRE(scan.valid_bytes == last);
    if (size == last) {
      REQUIRE(scan.corruptions.empty());
    } else {
      REQUIRE(scan.corruptions.size() == 1);
      REQUIRE(scan.corruptions[0].reason == "torn record at end of file");
      REQUIRE(scan.corruptions[0].offset == last);
      REQUIRE(scan.corruptions[0].bytes == size - last);
    }
  }
  // A writer continuing the torn journal drops the tail and appends cleanly.
  WriteAll(cut, good.substr(0, last + 100));
  {
    const JournalScan torn = ScanFrameJournal(cut);
    FrameJournalWriter writer = FrameJournalWriter::Continue(cut, torn.valid_bytes, {});
    writer.AppendFrame(EntryFor(5, "", shape), TestFrame(shape, 5));
    writer.AppendFinish("series_end");
  }
  REQUIRE(ReadAll(cut).substr(0, last) == good.substr(0, last));
  const JournalScan resumed = ScanFrameJournal(cut);
  REQUIRE(resumed.corruptions.empty());
  REQUIRE(resumed.frames.size() == 6);
  REQUIRE(resumed.finished);
  RequireFrameEquals(ReadJournalFrameAt(cut, resumed.frames[5].offset), 5, shape);
}

TEST_CASE("Flipped bytes drop the damaged records and keep the rest", "[frame_journal]") {
  const std::string dir = testing::ScratchDir("frame_journal_flipped");
  const std::string path = dir + "/frames.journal";
  const std::string damaged = dir + "/damaged.journal";
  const Shape shape{40, 40};
  const std::vector<std::uint64_t> offsets = WriteJournal(path, shape, 30, /*finish=*/true);
  const std::string good = ReadAll(path);

  SECTION("one flipped pixel byte loses only the records of its block") {
    std::string bytes = good;
    const std::uint64_t at = offsets[12] + 500;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
    WriteAll(damaged, bytes);
    const JournalScan scan = ScanFrameJournal(damaged);
    INFO(scan.Summary());
    REQUIRE(!scan.corruptions.empty());
    REQUIRE(scan.corruptions[0].reason == "checksum mismatch");
    REQUIRE(scan.finished);
    // As LevelDB's reader: the damaged fragment and the rest of its block are
    // dropped (its length cannot be trusted), so frame 12 and the records
    // that start after it in that block are lost; the ones before it and
    // those starting in later blocks survive.
    const std::uint64_t block_end = (at / kJournalBlockBytes + 1) * kJournalBlockBytes;
    std::size_t expected = 0;
    for (std::size_t k = 0; k < offsets.size(); ++k) {
      if (k < 12 || offsets[k] >= block_end) ++expected;
    }
    REQUIRE(scan.frames.size() == expected);
    REQUIRE(scan.frames.size() >= 25);
    for (const JournalFrameEntry& e : scan.frames) {
      RequireFrameEquals(ReadJournalFrameAt(damaged, e.offset), e.index, shape);
    }
    REQUIRE_THROWS_AS(ReadJournalFrameAt(damaged, offsets[12]), FileError);
  }

  SECTION("random damage never throws and never yields a wrong frame") {
    std::mt19937 rng(7);
    int damaged_scans = 0;
    for (int trial = 0; trial < 200; ++trial) {
      std::string bytes = good;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) bytes[rng() % bytes.size()] = static_cast<char>(rng());
      if (trial % 3 == 0) bytes.resize(rng() % bytes.size());
      const JournalScan scan = ScanFrameJournalBytes(bytes);
      if (!scan.corruptions.empty()) ++damaged_scans;
      REQUIRE(scan.valid_bytes <= bytes.size());
      WriteAll(damaged, bytes);
      for (const JournalFrameEntry& e : scan.frames) {
        // A record that passed its checksum is the one written.
        RequireFrameEquals(ReadJournalFrameAt(damaged, e.offset), e.index, shape);
      }
    }
    REQUIRE(damaged_scans > 150);
  }
}

TEST_CASE("Large frames round-trip", "[frame_journal]") {
  const std::string path = testing::ScratchDir("frame_journal_2k") + "/frames.journal";
  const Shape shape{2048, 2048};  // 16 MiB, 513 fragments
  FrameJournalWriter writer = FrameJournalWriter::Create(path, {});
  writer.AppendSeries(TestSeries(shape));
  const std::uint64_t at = writer.AppendFrame(EntryFor(3, "", shape), TestFrame(shape, 3));
  const JournalScan scan = ScanFrameJournal(path);
  REQUIRE(scan.corruptions.empty());
  REQUIRE(scan.frames.size() == 1);
  RequireFrameEquals(ReadJournalFrameAt(path, at), 3, shape);
}

TEST_CASE("Series records refuse malformed documents", "[frame_journal]") {
  const JournalSeries s = TestSeries({2, 3});
  nlohmann::json json = s.ToJson();
  REQUIRE(JournalSeries::FromJson(json).ToJson() == json);
  json["dtype"] = "complex128";
  REQUIRE_THROWS_AS(JournalSeries::FromJson(json), std::invalid_argument);
  json = s.ToJson();
  json.erase("shape");
  REQUIRE_THROWS_AS(JournalSeries::FromJson(json), std::invalid_argument);
  json = s.ToJson();
  json["series"] = 1.5;
  REQUIRE_THROWS_AS(JournalSeries::FromJson(json), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
