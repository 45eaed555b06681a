#include "stream/bind_fence.hpp"

#include <boost/asio/ip/address.hpp>

namespace livealign {
namespace {

// "" when `host` names this machine only.
std::string WhyHostIsRemote(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") return "";
  if (host == "*") return "'*' binds every interface";
  boost::system::error_code ec;
  const boost::asio::ip::address address = boost::asio::ip::make_address(host, ec);
  if (ec) return "'" + host + "' is an interface or host name, not a loopback address";
  if (address.is_unspecified()) return "'" + host + "' binds every interface";
  if (!address.is_loopback()) return "'" + host + "' is not a loopback address";
  return "";
}

}  // namespace

std::string WhyZmqBindIsRemote(const std::string& endpoint) {
  const auto scheme_end = endpoint.find("://");
  if (scheme_end == std::string::npos) return "'" + endpoint + "' has no transport://";
  const std::string transport = endpoint.substr(0, scheme_end);
  if (transport == "ipc" || transport == "inproc") return "";
  if (transport != "tcp") return "transport " + transport + ":// reaches the network";
  const std::string address = endpoint.substr(scheme_end + 3);
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return "'" + endpoint + "' has no port";
  return WhyHostIsRemote(address.substr(0, colon));
}

std::string WhyHttpBindIsRemote(const std::string& host_port) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos) return "'" + host_port + "' is not host:port";
  return WhyHostIsRemote(host_port.substr(0, colon));
}

std::vector<RemoteBind> RemoteBinds(const DaemonOptions& options, const std::string& http) {
  std::vector<RemoteBind> out;
  auto check_zmq = [&](const char* option, const std::string& endpoint) {
    std::string reason = WhyZmqBindIsRemote(endpoint);
    if (!reason.empty()) out.push_back(RemoteBind{option, endpoint, std::move(reason)});
  };
  if (options.source_bind) check_zmq("--source", options.source);
  check_zmq("--publish", options.publish);
  check_zmq("--control", options.control);
  if (!http.empty()) {
    std::string reason = WhyHttpBindIsRemote(http);
    if (!reason.empty()) out.push_back(RemoteBind{"--http", http, std::move(reason)});
  }
  return out;
}

}  // namespace livealign
