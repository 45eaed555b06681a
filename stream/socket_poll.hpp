#pragma once
// One wait for a readable socket, shared by the daemon's socket threads (the
// receiver and the control thread), which look at their stop flag between
// waits.

#include <cerrno>
#include <chrono>

#include <zmq.hpp>

namespace livealign {

// How long a socket thread waits for input before it looks at its stop flag.
constexpr std::chrono::milliseconds kSocketPollInterval{50};

enum class SocketPoll {
  kReadable,    // a message is ready
  kIdle,        // nothing within the timeout, or an interrupted wait (EINTR)
  kTerminated,  // the ZeroMQ context is closing (ETERM)
};

inline SocketPoll PollReadable(zmq::socket_t& socket,
                               std::chrono::milliseconds timeout = kSocketPollInterval) {
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  try {
    zmq::poll(&item, 1, timeout);
  } catch (const zmq::error_t& e) {
    return e.num() == ETERM ? SocketPoll::kTerminated : SocketPoll::kIdle;
  }
  return (item.revents & ZMQ_POLLIN) ? SocketPoll::kReadable : SocketPoll::kIdle;
}

}  // namespace livealign
