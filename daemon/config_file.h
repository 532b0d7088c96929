// chaind's configuration file and CHAIND_* variables: what daemon/main.cc adds to its CLI11 App
// so that every flag of its table may come from the command line, the environment or the file,
// in that order of precedence. Header-only: CLI11 is chaind's (main.cc's), not daemon_lib's.
#pragma once

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdlib>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/paths.h"

namespace chainctl::daemon::config {

// "--jobs" of "--jobs,-j".
inline std::string FirstName(std::string_view names) {
  return std::string(names.substr(0, names.find(',')));
}

// CHAIND_JOBS for "--jobs,-j": CHAIND_ and the first name, without its dashes, in upper case,
// '-' as '_'.
inline std::string EnvName(std::string_view names) {
  std::string env = "CHAIND_";
  for (char c : FirstName(names).substr(2)) {
    env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return env;
}

inline bool EnvSet(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return value && *value;  // as CLI11 reads it: an empty variable is not set
}

// The line (from 1) of `key` in a configuration file's `text`: "key = ..." (quotes around the key
// allowed), or "[key]" for a section; 0 if not found.
inline int LineOf(const std::string& text, const std::string& key, bool section) {
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string name = section ? line : line.substr(0, line.find('='));
    name = CLI::detail::trim_copy(name);
    if (!section) CLI::detail::remove_quotes(name);
    if (name == (section ? "[" + key + "]" : key)) return number;
  }
  return 0;
}

// What the configuration file gave: the flags (by first name, "--jobs") and their lines.
struct ConfigSource {
  std::string file;  // the file read, once known (ParseCommandLine)
  std::map<std::string, int> lines;
  // " (in FILE, line N)" if the file gave the flag `name`, else "".
  std::string Where(const std::string& name) const {
    auto it = lines.find(name);
    if (it == lines.end()) return "";
    return " (in " + file + (it->second ? ", line " + std::to_string(it->second) : "") + ")";
  }
};

// chaind's configuration file: CLI11's TOML-ish lines, "key = value" with the flags' long names
// as keys ("jobs = 4", "no-prefetch = true"), '#' comments; values with spaces or commas in
// quotes. Two changes to CLI11's reading: a key that names no flag (or a [section]) is an error
// naming its line, and a key whose CHAIND_* variable is set is left out, so that the environment
// wins over the file (CLI11 would read the file first). What the file gives goes to `source`.
class ConfigFile : public CLI::ConfigTOML {
 public:
  ConfigFile(const CLI::App* app, ConfigSource* source) : app_(app), source_(source) {}

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::string text(std::istreambuf_iterator<char>(input), {});
    std::istringstream in(text);
    std::vector<CLI::ConfigItem> kept;
    for (CLI::ConfigItem& item : CLI::ConfigTOML::from_config(in)) {
      if (!item.parents.empty()) {
        std::string section = CLI::detail::join(item.parents, ".");
        throw CLI::ConfigError(At(LineOf(text, section, true)) + "[" + section +
                               "]: chaind's configuration has no sections");
      }
      const CLI::Option* option = Find(item.name);
      int line = LineOf(text, item.name, false);
      if (!option) throw CLI::ConfigError(At(line) + "unknown key \"" + item.name + "\"");
      if (EnvSet(option->get_envname())) continue;                          // the environment wins
      if (option->count() == 0) source_->lines[option->get_name()] = line;  // else the flag wins
      kept.push_back(std::move(item));
    }
    return kept;
  }

 private:
  static std::string At(int line) { return line ? "line " + std::to_string(line) + ": " : ""; }
  // As CLI11 finds a key's flag.
  const CLI::Option* Find(const std::string& key) const {
    const CLI::Option* option = app_->get_option_no_throw("--" + key);
    if (!option && key.size() == 1) option = app_->get_option_no_throw("-" + key);
    return option;
  }

  const CLI::App* app_;
  ConfigSource* source_;
};

// The configuration file read without --config: $CHAIND_CONFIG, which must then exist; else
// $XDG_CONFIG_HOME/chainctl/chaind.conf or ~/.config/chainctl/chaind.conf, if it exists.
// (common/paths.h: chainctl's autostart looks there too.)
struct DefaultConfig {
  std::string path;
  bool required = false;
};
inline DefaultConfig DefaultConfigFile() {
  DefaultConfig config;
  config.path = chainctl::DefaultConfigFile(chainctl::RealEnv(), &config.required);
  return config;
}

// --config on `app`, the file read through ConfigFile into `source`. Returns the file that is
// read if --config is not given ("" none).
inline std::string AddConfig(CLI::App* app, ConfigSource* source) {
  DefaultConfig fallback = DefaultConfigFile();
  app->set_config("--config", fallback.path,
                  "Read flags from this file, \"key = value\" lines (\"jobs = 4\"); below "
                  "CHAIND_* variables and flags (env CHAIND_CONFIG; default: "
                  "$XDG_CONFIG_HOME/chainctl/chaind.conf, if it exists)",
                  fallback.required);
  app->config_formatter(std::make_shared<ConfigFile>(app, source));
  return fallback.path;
}

// What is wrong in `e`: for the configuration file's errors, with its name; for a flag's value
// that came from it, with its line.
inline std::string Describe(const CLI::ParseError& e, const ConfigSource& source) {
  std::string what = e.what();
  if (dynamic_cast<const CLI::ConfigError*>(&e)) return "config file " + source.file + ": " + what;
  if (dynamic_cast<const CLI::FileError*>(&e)) return "config file " + what;
  for (const auto& [name, line] : source.lines) {
    size_t at = what.find(name);  // the whole name: --keep-runs is not --keep-runs-for
    if (at != std::string::npos &&
        (at + name.size() == what.size() || what[at + name.size()] != '-')) {
      return what + source.Where(name);
    }
  }
  return what;
}

}  // namespace chainctl::daemon::config
