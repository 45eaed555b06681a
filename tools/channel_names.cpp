#include "tools/channel_names.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <stdexcept>

#include "stream/codec.hpp"

namespace livealign {

ChannelSelection SelectChannels(int count, const std::string& names_csv, const std::string& chosen) {
  ChannelSelection selection;
  if (count <= 0) {
    if (!names_csv.empty() || !chosen.empty()) {
      throw std::invalid_argument("--channel-names and --register-channel need --channel-axis");
    }
    return selection;
  }
  if (names_csv.empty()) {
    for (int c = 0; c < count; ++c) selection.names.push_back("ch" + std::to_string(c));
  } else {
    std::stringstream in(names_csv);
    for (std::string name; std::getline(in, name, ',');) selection.names.push_back(name);
  }
  if (static_cast<int>(selection.names.size()) != count) {
    throw std::invalid_argument("--channel-names gives " + std::to_string(selection.names.size()) +
                                " names for " + std::to_string(count) + " channels");
  }
  for (std::size_t c = 0; c < selection.names.size(); ++c) {
    const std::string& name = selection.names[c];
    const bool ok = IsValidChannelName(name);
    if (!ok) throw std::invalid_argument("channel name '" + name + "' must be of A-Za-z0-9._-");
    if (std::count(selection.names.begin(), selection.names.end(), name) > 1) {
      throw std::invalid_argument("channel '" + name + "' is named twice");
    }
  }
  if (chosen.empty()) return selection;
  const auto it = std::find(selection.names.begin(), selection.names.end(), chosen);
  if (it != selection.names.end()) {
    selection.register_index = static_cast<std::size_t>(it - selection.names.begin());
  } else if (std::all_of(chosen.begin(), chosen.end(), ::isdigit) && std::stoi(chosen) < count) {
    selection.register_index = static_cast<std::size_t>(std::stoi(chosen));
  } else {
    throw std::invalid_argument("channel '" + chosen + "' is not one of the file's channels");
  }
  return selection;
}

}  // namespace livealign
