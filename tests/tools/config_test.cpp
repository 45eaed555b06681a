// config/livealign.ini is the text `livealign config` prints from the engine
// option table, and parses back into the compiled-in defaults;
// config/serve.ini states the daemon's compiled-in defaults.
#include <catch2/catch.hpp>

#include <boost/program_options.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/engine_options.hpp"
#include "stream/daemon.hpp"
#include "stream/http_server.hpp"
#include "tests/support/child_process.hpp"
#include "tools/engine_option_binding.hpp"

namespace livealign {
namespace {

namespace po = boost::program_options;

std::string ConfigPath(const char* name) {
  return std::string(LIVEALIGN_TEST_SOURCE_DIR) + "/config/" + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST_CASE("config/livealign.ini is the generated text of the option table", "[tools][config]") {
  const std::string committed = ReadFile(ConfigPath("livealign.ini"));
  // On failure: livealign config > config/livealign.ini
  CHECK(committed == EngineOptionsIni());

  const char* binary = std::getenv("LIVEALIGN_BINARY");
  REQUIRE(binary != nullptr);
  testing::ChildProcess config({binary, "config"}, /*capture_stdout=*/true);
  const std::string printed = config.ReadAll(std::chrono::seconds(20));
  CHECK(config.Wait() == 0);
  CHECK(printed == EngineOptionsIni());
}

TEST_CASE("config/livealign.ini parses into the compiled-in defaults", "[tools][config]") {
  EngineOptions from_file;
  // Start far from the defaults, so a key the parse missed shows.
  for (const EngineOptionInfo& option : EngineOptionTable()) {
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(from_file.*member)>;
          if constexpr (std::is_same_v<T, std::string>) from_file.*member = "unset";
          else if constexpr (std::is_same_v<T, bool>) from_file.*member = !(EngineOptions{}.*member);
          else from_file.*member = static_cast<T>(-12345);
        },
        option.field);
  }
  po::options_description description;
  AddEngineOptions(&description, &from_file);
  std::ifstream file(ConfigPath("livealign.ini"));
  REQUIRE(file.good());
  const po::parsed_options parsed = po::parse_config_file(file, description, false);
  std::set<std::string> in_file;
  for (const auto& option : parsed.options) in_file.insert(option.string_key);
  // Apply only what the file says (no po defaults), then compare field by field.
  for (const auto& option : parsed.options) {
    const auto* described = description.find_nothrow(option.string_key, false);
    REQUIRE(described != nullptr);
    boost::any value;
    described->semantic()->parse(value, option.value, true);
    described->semantic()->notify(value);
  }
  const EngineOptions defaults;
  for (const EngineOptionInfo& option : EngineOptionTable()) {
    CAPTURE(option.Key());
    CHECK(in_file.count(option.Key()) == 1);
    CHECK(option.Text(from_file) == option.Text(defaults));
  }
}

TEST_CASE("the option table's defaults pass its own limits, and the limits bite", "[tools][config]") {
  std::string error;
  REQUIRE(EngineOptions{}.Check(&error));
  EngineOptions bad;
  bad.oversample = 3;
  CHECK_FALSE(bad.Check(&error));
  CHECK(error == "oversample must be in [1, 2]");
  bad = EngineOptions{};
  bad.window = "box";
  CHECK_FALSE(bad.Check(&error));
  CHECK(error == "window must be one of none, hann, tukey, not 'box'");
  bad = EngineOptions{};
  bad.weight_sigma = 0;
  CHECK_FALSE(bad.Check(&error));
  CHECK(error == "weight_sigma must be in (0, 0.5]");
  bad = EngineOptions{};
  bad.weight_low = bad.weight_cutoff;
  CHECK_FALSE(bad.Check(&error));
}

// `key = value` lines of an ini file; `# key = value` lines count as stated
// (commented out) with their value.
std::map<std::string, std::string> IniValues(const std::string& text, std::set<std::string>* commented) {
  std::map<std::string, std::string> values;
  const std::regex line_pattern(R"(^(#\s*)?([A-Za-z][A-Za-z0-9-]*)\s*=\s*(.*?)\s*$)");
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, line_pattern)) continue;
    if (m[1].matched) {
      commented->insert(m[2]);
    } else {
      values[m[2]] = m[3];
    }
  }
  return values;
}

TEST_CASE("config/serve.ini states the daemon's compiled-in defaults", "[tools][config]") {
  std::set<std::string> commented;
  const auto values = IniValues(ReadFile(ConfigPath("serve.ini")), &commented);
  REQUIRE(!values.empty());
  const nlohmann::json defaults = DaemonOptions{}.ToJson();
  std::set<std::string> daemon_keys;
  for (auto it = defaults.begin(); it != defaults.end(); ++it) {
    std::string key = it.key();
    for (char& c : key) c = c == '_' ? '-' : c;
    daemon_keys.insert(key);
    CAPTURE(key);
    const nlohmann::json& value = it.value();
    if (value.is_string() && value.get<std::string>().empty()) {
      // An empty default (e.g. no output root) is shown commented out.
      CHECK((commented.count(key) == 1 || (values.count(key) == 1 && values.at(key).empty())));
      continue;
    }
    REQUIRE(values.count(key) == 1);
    const std::string& text = values.at(key);
    if (value.is_string()) {
      CHECK(text == value.get<std::string>());
    } else if (value.is_boolean()) {
      CHECK(text == (value.get<bool>() ? "true" : "false"));
    } else {
      CHECK(std::stod(text) == value.get<double>());
    }
  }
  // Every other key is a serve-only option or an engine option at its default.
  const EngineOptions engine_defaults;
  for (const auto& [key, text] : values) {
    if (daemon_keys.count(key)) continue;
    CAPTURE(key);
    if (key == "http") {
      CHECK(text == HttpServerOptions{}.endpoint);
      continue;
    }
    if (key == "pixel-size-A") {
      CHECK(std::stod(text) == 0);
      continue;
    }
    bool engine_option = false;
    for (const EngineOptionInfo& option : EngineOptionTable()) {
      if (option.Key() != key) continue;
      engine_option = true;
      CHECK(text == option.Text(engine_defaults));
    }
    CHECK(engine_option);
  }
}

}  // namespace
}  // namespace livealign
