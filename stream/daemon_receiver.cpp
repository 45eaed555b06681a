#include "stream/daemon_receiver.hpp"

#include <iomanip>
#include <iterator>
#include <sstream>
#include <zmq_addon.hpp>

#include "stream/socket_poll.hpp"

namespace livealign {
namespace {

using Clock = std::chrono::steady_clock;

// Messages taken from the socket between two looks at the stop flag.
constexpr int kBurst = 64;
// Messages the receiver still takes from the socket's buffers after a stop
// (those a sender already handed to ZeroMQ), so that they are drained too;
// bounded in count and time, so that a sender that keeps sending does not
// hold the stop up (what it sends later gets no drift message).
constexpr int kMaxDrainedOnStop = 100000;
constexpr double kMaxSocketDrainS = 1.0;

}  // namespace

DaemonReceiver::DaemonReceiver(const DaemonOptions& options, InboundQueue* inbound,
                               ResultPublisher* publisher, DaemonCounters* counters,
                               const StopSignal* stop, const QueueWaitEstimate* queue_wait)
    : options_(options),
      pull_(options.source_pattern == "pull"),
      inbound_(inbound),
      publisher_(publisher),
      counters_(counters),
      stop_(stop),
      queue_wait_(queue_wait) {}

std::string DaemonReceiver::Open(zmq::context_t& context) {
  socket_ = zmq::socket_t(context, pull_ ? zmq::socket_type::pull : zmq::socket_type::sub);
  // A few frames of ZMQ buffering at most: beyond that, PULL pushes back on
  // the sender and SUB drops (and the gap is reported), so memory is bounded
  // by queue_bytes plus these.
  socket_.set(zmq::sockopt::rcvhwm, 8);
  socket_.set(zmq::sockopt::linger, 0);
  if (!pull_) socket_.set(zmq::sockopt::subscribe, "");
  if (options_.source_bind) {
    socket_.bind(options_.source);
    return socket_.get(zmq::sockopt::last_endpoint);
  }
  socket_.connect(options_.source);
  return options_.source;
}

bool DaemonReceiver::ReceiveReady(int budget, int* taken) {
  for (; *taken < budget; ++*taken) {
    parts_.clear();
    zmq::recv_result_t got;
    try {
      got = zmq::recv_multipart(socket_, std::back_inserter(parts_), zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      return e.num() != ETERM;
    }
    if (!got) return true;
    if (!Handle(parts_)) return false;
  }
  return true;
}

void DaemonReceiver::Run() {
  while (!stop_->requested()) {
    const SocketPoll poll = PollReadable(socket_);
    if (poll == SocketPoll::kTerminated) return;
    if (poll == SocketPoll::kIdle) continue;
    // Drain what is ready, then look at the stop flag again.
    int taken = 0;
    if (!ReceiveReady(kBurst, &taken)) return;
  }
  DrainSocketOnStop();
  // The series thread registers what is queued, then ends.
  inbound_->Close();
}

// After a stop: takes what senders already handed to ZeroMQ (until the
// socket has been quiet for one poll interval), so that those frames are
// registered too rather than lost with the socket.
void DaemonReceiver::DrainSocketOnStop() {
  const Clock::time_point begin = Clock::now();
  for (int taken = 0;
       taken < kMaxDrainedOnStop && !stop_->DrainExpired() &&
       std::chrono::duration<double>(Clock::now() - begin).count() < kMaxSocketDrainS;) {
    // Quiet for one poll interval (or closing): everything handed over is in.
    if (PollReadable(socket_) != SocketPoll::kReadable) return;
    if (!ReceiveReady(kMaxDrainedOnStop, &taken)) return;
  }
}

bool DaemonReceiver::Handle(std::vector<zmq::message_t>& parts) {
  const Clock::time_point arrival = Clock::now();
  counters_->Add(&DaemonCounts::messages_received);
  std::vector<std::string_view> views;
  views.reserve(parts.size());
  for (const auto& part : parts) views.emplace_back(part.data<char>(), part.size());
  InboundMessage decoded;
  try {
    decoded = DecodeInbound(views, options_.max_pixels);
  } catch (const DecodeError& e) {
    counters_->Add(&DaemonCounts::bad_messages, 1, e.code());
    publisher_->EmitEvent(Event::Error(e.code(), std::string("message dropped: ") + e.what()));
    return true;
  }
  InboundItem item;
  item.arrival = arrival;
  std::size_t bytes = 0;
  if (auto* frame = std::get_if<FrameMessage>(&decoded)) {
    frame->payload = nullptr;  // the view dies with `parts`; the part moves
    item.payload = std::move(parts[1]);
    bytes = item.payload.size() + kInboundItemOverheadBytes;
    for (std::size_t c = 2; c < parts.size(); ++c) {
      bytes += parts[c].size();
      item.more_payloads.push_back(std::move(parts[c]));
    }
    counters_->Add(&DaemonCounts::frames_received);
  }
  const bool is_frame = bytes > 0;
  const SeriesId series_id = std::visit([](const auto& m) { return m.series; }, decoded);
  const frame_id_t index = is_frame ? std::get<FrameMessage>(decoded).index : kInvalidFrameId;
  std::visit([&](auto&& m) { item.message = std::move(m); }, decoded);
  // Series boundaries cost no bytes, so they always fit and are never lost.
  if (!is_frame) return inbound_->Push(std::move(item), bytes);
  if (pull_) {
    // Back-pressure by bytes and by time: the frame is queued once it would
    // wait at most max_queue_wait_s (the frames ahead of it times the time
    // per frame); until then the socket is not read, and the sender's send
    // blocks. So a frame accepted in an overload is at most that old.
    std::size_t max_ahead = static_cast<std::size_t>(-1);
    const double seconds_per_frame = queue_wait_ != nullptr ? queue_wait_->SecondsPerFrame() : 0.0;
    if (options_.max_queue_wait_s > 0 && seconds_per_frame > 0) {
      max_ahead = QueueWaitEstimate::FramesAheadWithin(options_.max_queue_wait_s, seconds_per_frame);
    }
    return inbound_->Push(std::move(item), bytes, max_ahead);
  }
  if (queue_wait_ != nullptr && options_.max_queue_wait_s > 0) {
    const double wait_s = queue_wait_->ExpectedWaitS(inbound_->Size());
    if (wait_s > options_.max_queue_wait_s) {
      if (inbound_->Finished()) return false;
      counters_->Add(&DaemonCounts::frames_lost, 1, "queue_wait");
      std::ostringstream message;
      message << "frame " << index << " lost: the engine is behind and it would wait "
              << std::setprecision(2) << wait_s << " s in the queue (bound "
              << options_.max_queue_wait_s << " s)";
      publisher_->EmitEvent(Event::Error("queue_wait", message.str(), series_id, index));
      return true;
    }
  }
  if (!inbound_->TryPush(std::move(item), bytes)) {
    if (inbound_->Finished()) return false;
    counters_->Add(&DaemonCounts::frames_lost, 1, "queue_full");
    publisher_->EmitEvent(Event::Error(
        "queue_full",
        "frame " + std::to_string(index) +
            " lost: the engine is behind and the queue is full (" +
            std::to_string(options_.queue_bytes) + " bytes)",
        series_id, index));
  }
  return true;
}

}  // namespace livealign
