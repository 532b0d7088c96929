#include "common/yaml_util.h"

#include <yaml-cpp/emitter.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <regex>

namespace chainctl {
namespace {

void Emit(YAML::Emitter& out, const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : v.items()) {
        out << YAML::Key;
        Emit(out, key);
        out << YAML::Value;
        Emit(out, item);
      }
      out << YAML::EndMap;
      break;
    case nlohmann::json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& item : v) Emit(out, item);
      out << YAML::EndSeq;
      break;
    case nlohmann::json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      bool ambiguous = !ResolvePlainScalar(s).is_string();
      if (ambiguous || s.empty()) out << YAML::DoubleQuoted;
      out << s;
      break;
    }
    case nlohmann::json::value_t::null:
      out << YAML::Null;
      break;
    default:  // numbers and booleans: their JSON text is valid YAML
      out << v.dump();
      break;
  }
}

}  // namespace

// Resolves a plain scalar by the YAML 1.2 core schema.
nlohmann::json ResolvePlainScalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kOctOrHex("0o[0-7]+|0x[0-9a-fA-F]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (s.size() <= 40 && std::regex_match(s, kInt)) {
    if (*begin == '+') ++begin;
    int64_t i;
    if (std::from_chars(begin, end, i).ec == std::errc()) return i;
    uint64_t u;
    if (std::from_chars(begin, end, u).ec == std::errc()) return u;
    return std::strtod(s.c_str(), nullptr);  // too large for 64 bits: a float
  }
  if (s.size() <= 40 && std::regex_match(s, kOctOrHex)) {
    uint64_t u;
    if (std::from_chars(begin + 2, end, u, s[1] == 'o' ? 8 : 16).ec == std::errc()) return u;
    return s;
  }
  if (s.size() <= 400 && std::regex_match(s, kFloat)) return std::strtod(s.c_str(), nullptr);
  std::string_view v = s;
  std::string_view magnitude = v[0] == '-' || v[0] == '+' ? v.substr(1) : v;
  if (magnitude == ".inf" || magnitude == ".Inf" || magnitude == ".INF") {
    return v[0] == '-' ? -std::numeric_limits<double>::infinity()
                       : std::numeric_limits<double>::infinity();
  }
  if (v == ".nan" || v == ".NaN" || v == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

std::string JsonToYaml(const nlohmann::json& value) {
  YAML::Emitter out;
  Emit(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace chainctl
