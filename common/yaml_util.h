// YAML scalars by the YAML 1.2 core schema, and JSON written as YAML.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace chainctl {

// What a plain (unquoted, untagged) scalar means: null, a boolean, an
// integer, a float, or else the string itself. `off` and `yes` are strings.
nlohmann::json ResolvePlainScalar(const std::string& s);

// `value` as a YAML block document; strings that would read back as another
// type are quoted, so ParseYamlDoc(JsonToYaml(v)) gives v again.
std::string JsonToYaml(const nlohmann::json& value);

}  // namespace chainctl
