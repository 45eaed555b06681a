#pragma once
// NpyFrameStore: a FrameStore over the .npy stack that is being registered,
// so that `register` keeps a bounded number of frames in RAM however long the
// stack (1000 frames of 2048^2 are 16.8 GB as float32). The file already
// holds every frame: Put records only that the frame was accepted (and its
// timestamp), and Get reads the frame back from the file at its offset
// (NpyFrameReader::ReadAt, any dtype the reader takes), so memory is that of
// the engine's own frame cache.
//
// Contract: the frame put under index i is frame i of the file, and the file
// does not change while the store is in use (what `register` guarantees by
// reading frame i from that same file; Put does not read the file to check).
// One channel, "". Thread-safety as FrameStore: concurrent Get (pread on one
// descriptor), Put from one thread.
//
//   auto store = std::make_shared<NpyFrameStore>("stack.npy");
//   RegistrationEngine engine(options, shape, store);

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "adapters/npy_reader.hpp"
#include "core/frame_store.hpp"

namespace livealign {

class NpyFrameStore final : public FrameStore {
 public:
  // Opens `path` (a reader of its own); throws FileError as NpyFrameReader.
  explicit NpyFrameStore(const std::string& path);

  // Throws std::invalid_argument for a channel other than "", an index
  // outside the file's series, or a frame whose shape is not the file's.
  void Put(frame_id_t index, const std::string& channel, FrameView frame,
           double timestamp_s) override;
  // Throws std::out_of_range for a frame not put, FileError when the read fails.
  Frame Get(frame_id_t index, const std::string& channel = "") const override;
  frame_id_t Count(const std::string& channel = "") const override;
  std::size_t bytes_in_memory() const override;

 private:
  NpyFrameReader reader_;
  mutable std::mutex mutex_;  // guards the two vectors
  std::vector<char> accepted_;         // per file frame: put
  std::vector<double> timestamps_s_;   // per file frame: as put
  frame_id_t count_ = 0;
};

}  // namespace livealign
