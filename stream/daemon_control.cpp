#include "stream/daemon_control.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <zmq_addon.hpp>

#include "stream/socket_poll.hpp"

namespace livealign {
namespace {

// How long a save or reset may take on the series thread before the request
// is answered as timed out.
constexpr auto kCommandTimeout = std::chrono::minutes(5);

}  // namespace

std::string ControlRefusal(const DaemonOptions& options, const ControlRequest& request) {
  if (!options.control_token_required) return "";
  if (request.cmd == "status" || request.cmd == "snapshot" || request.cmd == "matrices_window") {
    return "";  // they only read
  }
  if (options.control_token.empty()) {
    return request.cmd + " refused: the daemon accepts remote connections and was started "
                         "without --control-token-file";
  }
  const std::string& want = options.control_token;
  const std::string& got = request.token;
  unsigned diff = got.size() == want.size() ? 0u : 1u;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff |= static_cast<unsigned char>(want[i]) ^
            static_cast<unsigned char>(i < got.size() ? got[i] : 0);
  }
  if (diff == 0) return "";
  return request.cmd + (got.empty() ? " refused: the request has no token"
                                    : " refused: wrong token");
}

DaemonControl::DaemonControl(const DaemonOptions& options, InboundQueue* inbound,
                             const ResultPublisher* publisher, DaemonCounters* counters,
                             const StopSignal* stop, std::function<nlohmann::json()> status,
                             std::function<void()> request_stop)
    : options_(options),
      inbound_(inbound),
      publisher_(publisher),
      counters_(counters),
      stop_(stop),
      status_(std::move(status)),
      request_stop_(std::move(request_stop)) {}

std::string DaemonControl::Bind(zmq::context_t& context) {
  socket_ = zmq::socket_t(context, zmq::socket_type::rep);
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind(options_.control);
  return socket_.get(zmq::sockopt::last_endpoint);
}

void DaemonControl::Run() {
  while (!stop_->requested()) {
    const SocketPoll poll = PollReadable(socket_);
    if (poll == SocketPoll::kTerminated) return;
    if (poll == SocketPoll::kIdle) continue;
    std::vector<zmq::message_t> parts;
    try {
      if (!zmq::recv_multipart(socket_, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
        continue;
      }
    } catch (const zmq::error_t&) {
      continue;
    }
    bool shutdown = false;
    const std::string reply =
        Answer(std::string_view(parts[0].data<char>(), parts[0].size()), &shutdown);
    try {
      socket_.send(zmq::buffer(reply), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      DaemonLog("error", std::string("control reply failed: ") + e.what());
    }
    if (shutdown) request_stop_();
  }
}

std::string DaemonControl::Answer(std::string_view encoded, bool* shutdown) {
  *shutdown = false;
  try {
    const ControlRequest request = DecodeControl(encoded);
    const std::string refusal = ControlRefusal(options_, request);
    if (!refusal.empty()) {
      counters_->CountError("unauthorized");
      return EncodeReply(false, refusal, nlohmann::json{{"code", "unauthorized"}});
    }
    const std::string& cmd = request.cmd;
    if (cmd == "status") return EncodeReply(true, "", status_());
    if (cmd == "snapshot") {
      const LatestHeaders latest = publisher_->Latest();
      return EncodeSnapshotReply(latest.drift, latest.quality, latest.average);
    }
    if (cmd == "shutdown") {
      *shutdown = true;
      return EncodeReply(true, "", nlohmann::json{{"stopping", true}});
    }
    return Carry(request);
  } catch (const DecodeError& e) {
    counters_->CountError(e.code());
    return EncodeReply(false, e.what(), nlohmann::json{{"code", e.code()}});
  }
}

void DaemonControl::SubmitPageRequest(std::string_view encoded) {
  try {
    const ControlRequest request = DecodeControl(encoded);
    if (request.cmd != "matrices_window") {
      // A page must not save, reset or stop the daemon (it has no token).
      counters_->CountError("page_request_refused");
      return;
    }
    // Nobody waits for the reply; its future only says whether it is done.
    std::lock_guard<std::mutex> lock(page_mutex_);
    page_pending_.erase(std::remove_if(page_pending_.begin(), page_pending_.end(),
                                       [](const std::future<nlohmann::json>& f) {
                                         return f.wait_for(std::chrono::seconds(0)) ==
                                                std::future_status::ready;
                                       }),
                        page_pending_.end());
    if (page_pending_.size() >= kMaxPendingPageRequests) {
      counters_->CountError("page_request_dropped");
      return;
    }
    InboundItem item;
    ControlCommand command{request.cmd, std::make_shared<std::promise<nlohmann::json>>(),
                           request.window};
    std::future<nlohmann::json> done = command.reply->get_future();
    item.message = std::move(command);
    if (!inbound_->TryPush(std::move(item), 0)) {
      counters_->CountError("page_request_dropped");
      return;
    }
    page_pending_.push_back(std::move(done));
  } catch (const DecodeError& e) {
    counters_->CountError(e.code());
  }
}

// save / reset / matrices_window run on the series thread (which owns the
// engine), after the frames already queued.
std::string DaemonControl::Carry(const ControlRequest& request) {
  const std::string& cmd = request.cmd;
  ControlCommand command{cmd, std::make_shared<std::promise<nlohmann::json>>(), request.window};
  std::future<nlohmann::json> future = command.reply->get_future();
  InboundItem item;
  item.message = std::move(command);
  if (!inbound_->TryPush(std::move(item), 0)) return EncodeReply(false, "daemon is stopping", {});
  try {
    if (future.wait_for(kCommandTimeout) != std::future_status::ready) {
      return EncodeReply(false, cmd + " timed out", {});
    }
    nlohmann::json result = future.get();
    const bool ok = result.value("ok", false);
    const std::string error = result.value("error", "");
    return EncodeReply(ok, error, result);
  } catch (const std::future_error&) {
    return EncodeReply(false, "daemon is stopping", {});
  }
}

}  // namespace livealign
