#include "stream/result_publisher.hpp"

#include <iostream>

namespace livealign {
namespace {

// Messages ZeroMQ keeps queued for one subscriber that does not keep up (its
// send high-water mark); beyond them that subscriber alone misses messages,
// as PUB does. It bounds what a stalled subscriber costs the daemon: the
// mark is a count, not bytes, so the cost is the size of the messages it
// holds, most of it the images (average and frame, every 0.5 s). At 10
// frames/s about 26 messages leave per second, so 1000 is some 40 s. It
// must not be much lower: the publisher thread writes bursts (an event per
// frame lost on a full queue, a drift and a quality per frame) faster than
// ZeroMQ's I/O thread drains them when the two cores are busy, and at 256 a
// healthy subscriber lost the series_end after such a burst (1 run in 40
// under load). Drift, quality and average are full state, so the next one
// replaces what a slow subscriber missed, and lost-frame events are also
// counted in `status`.
constexpr int kSubscriberBacklogMessages = 1000;

}  // namespace

void DaemonLog(const std::string& level, const std::string& line) {
  std::cerr << "livealign serve: " << level << ": " << line << std::endl;
}

ResultPublisher::ResultPublisher(DaemonCounters* counters, bool log_events)
    : counters_(counters),
      log_events_(log_events),
      // Outbound holds encoded messages (averages are a frame each); its bound
      // only matters if sinks are slow, and then the series thread waits.
      outbound_(std::size_t{256} << 20, 0) {}

std::string ResultPublisher::Bind(zmq::context_t& context, const std::string& endpoint) {
  socket_ = zmq::socket_t(context, zmq::socket_type::pub);
  // Pending results get a moment to leave when the daemon ends.
  socket_.set(zmq::sockopt::linger, 2000);
  socket_.set(zmq::sockopt::sndhwm, kSubscriberBacklogMessages);
  socket_.bind(endpoint);
  return socket_.get(zmq::sockopt::last_endpoint);
}

bool ResultPublisher::Publish(OutMessage message) {
  const std::size_t bytes = message.header.size() + message.data.size();
  OutItem item;
  item.message = std::move(message);
  return outbound_.Push(std::move(item), bytes);
}

bool ResultPublisher::PublishDrift(DriftUpdate drift, Clock::time_point arrival) {
  // Charged by its arrays (five per frame) rather than encoded bytes.
  const std::size_t bytes = 64 * drift.frame_indices.size() + 256;
  OutItem item;
  item.is_drift = true;
  item.drift = std::move(drift);
  item.arrival = arrival;
  return outbound_.Push(std::move(item), bytes);
}

void ResultPublisher::EmitEvent(const Event& event) {
  if (event.level != "info" && log_events_) {
    DaemonLog(event.level, event.code + ": " + event.message +
                               (event.series ? " (series " + event.series->ToString() + ")" : ""));
  }
  OutItem item;
  item.message = EncodeEvent(event);
  const std::size_t bytes = item.message.header.size();
  if (!outbound_.TryPush(std::move(item), bytes)) counters_->Add(&DaemonCounts::events_dropped);
}

void ResultPublisher::Run() {
  OutItem item;
  while (outbound_.Pop(&item)) {
    std::optional<double> latency_ms;
    if (item.is_drift) {
      item.drift.latency_ms =
          std::chrono::duration<double, std::milli>(Clock::now() - item.arrival).count();
      latency_ms = item.drift.latency_ms;
      item.message = EncodeDrift(item.drift);
    }
    Send(item.message);
    counters_->Add(&DaemonCounts::messages_published);
    const std::string& topic = item.message.topic;
    std::lock_guard<std::mutex> lock(latest_mutex_);
    if (topic == "drift") {
      latest_.drift = item.message.header;
      latest_.drift_latency_ms = latency_ms;
    } else if (topic == "quality") {
      latest_.quality = item.message.header;
    } else if (topic == "average") {
      latest_.average = item.message.header;
    }
  }
}

void ResultPublisher::Send(const OutMessage& m) {
  if (socket_) {
    try {
      const bool has_data = !m.data.empty();
      socket_.send(zmq::buffer(m.topic), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(m.header),
                   has_data ? zmq::send_flags::sndmore : zmq::send_flags::none);
      if (has_data) socket_.send(zmq::buffer(m.data), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      DaemonLog("error", std::string("publish failed: ") + e.what());
    }
  }
  for (ResultSink* sink : sinks_) {
    try {
      sink->Publish(m);
    } catch (const std::exception& e) {
      DaemonLog("error", std::string("result sink failed: ") + e.what());
    }
  }
}

LatestHeaders ResultPublisher::Latest() const {
  std::lock_guard<std::mutex> lock(latest_mutex_);
  return latest_;
}

void ResultPublisher::ClearLatest() {
  std::lock_guard<std::mutex> lock(latest_mutex_);
  latest_.drift.clear();
  latest_.quality.clear();
  latest_.average.clear();
}

}  // namespace livealign
