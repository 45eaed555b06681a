#include "adapters/result_json.hpp"

namespace livealign {

nlohmann::json OptionsJson(const EngineOptions& options) {
  nlohmann::json json = nlohmann::json::object();
  for (const EngineOptionInfo& option : EngineOptionTable()) {
    std::visit([&](auto member) { json[option.name] = options.*member; }, option.field);
  }
  return json;
}

}  // namespace livealign
