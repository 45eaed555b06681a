#include "stream/stream_clients.hpp"

#include <iterator>

#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace livealign {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds Remaining(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? left : std::chrono::milliseconds(0);
}

}  // namespace

// ---- FrameSender -----------------------------------------------------------

struct FrameSender::Impl {
  zmq::context_t context{1};
  zmq::socket_t socket;
  zmq::socket_t monitor;  // PUSH: connection events
  bool pub = false;
  bool peer_seen = false;
};

FrameSender::FrameSender(const std::string& endpoint, const std::string& pattern, bool bind)
    : impl_(std::make_unique<Impl>()) {
  if (pattern != "pub" && pattern != "push") {
    throw std::invalid_argument("sender pattern must be pub or push, not '" + pattern + "'");
  }
  impl_->pub = pattern == "pub";
  impl_->socket =
      zmq::socket_t(impl_->context, impl_->pub ? zmq::socket_type::xpub : zmq::socket_type::push);
  // Unsent frames are not worth waiting for at exit beyond a few seconds.
  impl_->socket.set(zmq::sockopt::linger, 5000);
  if (!impl_->pub) {
    const std::string address = "inproc://sender-monitor";
    zmq_socket_monitor(impl_->socket.handle(), address.c_str(),
                       ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED);
    impl_->monitor = zmq::socket_t(impl_->context, zmq::socket_type::pair);
    impl_->monitor.connect(address);
  }
  if (bind) {
    impl_->socket.bind(endpoint);
    endpoint_ = impl_->socket.get(zmq::sockopt::last_endpoint);
  } else {
    impl_->socket.connect(endpoint);
    endpoint_ = endpoint;
  }
}

FrameSender::~FrameSender() {
  if (impl_ && !impl_->pub) zmq_socket_monitor(impl_->socket.handle(), nullptr, 0);
}

bool FrameSender::WaitForPeer(std::chrono::milliseconds timeout) {
  if (impl_->peer_seen) return true;
  const Clock::time_point deadline = Clock::now() + timeout;
  zmq::socket_t& s = impl_->pub ? impl_->socket : impl_->monitor;
  while (true) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, Remaining(deadline));
    if (!(item.revents & ZMQ_POLLIN)) return false;
    std::vector<zmq::message_t> parts;
    if (!zmq::recv_multipart(s, std::back_inserter(parts), zmq::recv_flags::dontwait)) continue;
    // XPUB: a subscription is byte 1 followed by the topic. Monitor: any event
    // we asked for is a connection.
    if (!impl_->pub || (!parts.empty() && parts[0].size() >= 1 &&
                        parts[0].data<unsigned char>()[0] == 1)) {
      impl_->peer_seen = true;
      return true;
    }
  }
}

void FrameSender::SendSeriesStart(const SeriesStart& start) {
  SendRaw({EncodeSeriesStartHeader(start)});
}

void FrameSender::SendFrame(const FrameMessage& header, const void* pixels, std::size_t bytes) {
  const std::string encoded = EncodeFrameHeader(header);
  impl_->socket.send(zmq::buffer(encoded), zmq::send_flags::sndmore);
  impl_->socket.send(zmq::const_buffer(pixels, bytes), zmq::send_flags::none);
}

void FrameSender::SendSeriesEnd(const SeriesEnd& end) { SendRaw({EncodeSeriesEndHeader(end)}); }

void FrameSender::SendRaw(const std::vector<std::string>& parts) {
  for (std::size_t i = 0; i < parts.size(); ++i) {
    impl_->socket.send(zmq::buffer(parts[i]),
                       i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

// ---- ResultSubscriber ------------------------------------------------------

struct ResultSubscriber::Impl {
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::sub};
};

ResultSubscriber::ResultSubscriber(const std::string& endpoint,
                                   const std::vector<std::string>& topics, int backlog_messages)
    : impl_(std::make_unique<Impl>()) {
  impl_->socket.set(zmq::sockopt::linger, 0);
  impl_->socket.set(zmq::sockopt::rcvhwm, backlog_messages);
  if (topics.empty()) {
    impl_->socket.set(zmq::sockopt::subscribe, "");
  } else {
    for (const std::string& t : topics) impl_->socket.set(zmq::sockopt::subscribe, t);
  }
  impl_->socket.connect(endpoint);
}

ResultSubscriber::~ResultSubscriber() = default;

std::optional<ReceivedMessage> ResultSubscriber::Receive(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{impl_->socket.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(impl_->socket, std::back_inserter(parts), zmq::recv_flags::dontwait) ||
      parts.empty()) {
    return std::nullopt;
  }
  ReceivedMessage m;
  m.topic = parts[0].to_string();
  if (parts.size() > 1) {
    try {
      m.header = MsgpackToJson(std::string_view(parts[1].data<char>(), parts[1].size()));
    } catch (const DecodeError&) {
      m.header = nullptr;
    }
  }
  if (parts.size() > 2) m.data = parts[2].to_string();
  return m;
}

std::optional<ReceivedMessage> ResultSubscriber::WaitFor(const std::string& topic,
                                                         std::chrono::milliseconds timeout,
                                                         const std::string& event_code) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    std::optional<ReceivedMessage> m = Receive(Remaining(deadline));
    if (!m) return std::nullopt;
    if (m->topic != topic) continue;
    if (!event_code.empty() &&
        (!m->header.is_object() || m->header.value("code", "") != event_code)) {
      continue;
    }
    return m;
  }
}

// ---- ControlClient ---------------------------------------------------------

struct ControlClient::Impl {
  std::string endpoint;
  std::string token;
  zmq::context_t context{1};
  zmq::socket_t socket;
  void Open() {
    socket = zmq::socket_t(context, zmq::socket_type::req);
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(endpoint);
  }
};

ControlClient::ControlClient(const std::string& endpoint, std::string token)
    : impl_(std::make_unique<Impl>()) {
  impl_->endpoint = endpoint;
  impl_->token = std::move(token);
  impl_->Open();
}

ControlClient::~ControlClient() = default;

std::optional<nlohmann::json> ControlClient::Request(const std::string& cmd,
                                                     std::chrono::milliseconds timeout) {
  return RequestMap(nlohmann::json{{"cmd", cmd}}, timeout);
}

std::optional<nlohmann::json> ControlClient::RequestMap(nlohmann::json map,
                                                     std::chrono::milliseconds timeout) {
  if (!impl_->token.empty()) map["token"] = impl_->token;
  const std::vector<std::uint8_t> request = nlohmann::json::to_msgpack(map);
  impl_->socket.send(zmq::buffer(request), zmq::send_flags::none);
  zmq::pollitem_t item{impl_->socket.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  zmq::message_t reply;
  if (!(item.revents & ZMQ_POLLIN) || !impl_->socket.recv(reply, zmq::recv_flags::dontwait)) {
    impl_->Open();  // a REQ socket that missed its reply is stuck: start afresh
    return std::nullopt;
  }
  return MsgpackToJson(std::string_view(reply.data<char>(), reply.size()));
}

bool SyncSubscriber(ResultSubscriber& subscriber, ControlClient& control,
                    std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (!control.Request("reset", Remaining(deadline))) return false;
    const auto wait = std::min(std::chrono::milliseconds(200), Remaining(deadline));
    if (subscriber.WaitFor("event", wait, "reset")) return true;
  }
  return false;
}

}  // namespace livealign
