#pragma once
// The channels of a stack file with a channel axis (`register --channel-axis`,
// `apply --channel-axis`): their names and the one chosen.

#include <cstddef>
#include <string>
#include <vector>

namespace livealign {

struct ChannelSelection {
  std::vector<std::string> names;  // empty for a file without a channel axis
  std::size_t register_index = 0;  // the chosen channel (0 without an axis)
};

// `count` channels (0 = no channel axis); `names_csv` "HAADF,BF" or "" for
// ch0, ch1, ...; `chosen` a name, an index or "" (the first). Names follow the
// wire rules (stream/codec.hpp kMaxChannelNameLength). Throws
// std::invalid_argument for a count mismatch, a bad or repeated name, or an
// unknown choice.
ChannelSelection SelectChannels(int count, const std::string& names_csv, const std::string& chosen);

}  // namespace livealign
