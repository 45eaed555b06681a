#pragma once
// Which of the daemon's bound endpoints other machines could reach. `serve`
// refuses to bind any of them unless --allow-remote is given, and with it the
// state-changing control commands need a token (DaemonOptions::
// control_token_required); docs/protocol.md, "Exposure".
//
//   for (const RemoteBind& b : RemoteBinds(options, http_endpoint))
//     std::cerr << b.option << " " << b.endpoint << ": " << b.reason;

#include <string>
#include <vector>

#include "stream/daemon.hpp"

namespace livealign {

// Why binding the ZeroMQ endpoint would accept connections from other
// machines; "" when it would not (tcp on a loopback address or localhost,
// ipc://, inproc://). Wildcards, other addresses, interface and host names and
// every other transport count as reachable.
std::string WhyZmqBindIsRemote(const std::string& endpoint);

// The same for the web preview's "host:port" (HttpServerOptions::endpoint).
std::string WhyHttpBindIsRemote(const std::string& host_port);

struct RemoteBind {
  std::string option;    // the command-line option, e.g. "--publish"
  std::string endpoint;  // as given
  std::string reason;    // WhyZmqBindIsRemote / WhyHttpBindIsRemote
};

// Every endpoint the daemon would bind that is reachable from other machines:
// publish, control, the source when source_bind, and `http` unless it is "".
std::vector<RemoteBind> RemoteBinds(const DaemonOptions& options, const std::string& http);

}  // namespace livealign
