#pragma once
// What the daemon's receiver and control parts hand to the series part: one
// queue of work items, bounded in payload bytes (stream/bounded_queue.hpp).
// The queue is the only thing they share; it locks itself.

#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "stream/bounded_queue.hpp"
#include "stream/codec.hpp"

namespace livealign {

// Cost charged per queued item besides its payload (header, bookkeeping).
constexpr std::size_t kInboundItemOverheadBytes = 256;

// A request from the control part that the series thread must carry out,
// after the frames already queued.
struct ControlCommand {
  std::string cmd;  // "save", "reset" or "matrices_window"
  std::shared_ptr<std::promise<nlohmann::json>> reply;
  ShiftMatrixWindowRequest window;  // for "matrices_window"
};

// One unit of work for the series thread.
struct InboundItem {
  std::variant<SeriesStart, FrameMessage, SeriesEnd, ControlCommand> message;
  zmq::message_t payload;  // a frame's pixels (moved, never copied)
  std::vector<zmq::message_t> more_payloads;  // channels 2.. of a several-detector frame
  std::chrono::steady_clock::time_point arrival;
};

using InboundQueue = BoundedQueue<InboundItem>;

}  // namespace livealign
