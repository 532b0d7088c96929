// YAML chain files: yaml-cpp parses, and the node tree is converted to JSON
// with the YAML 1.2 core schema (so `off` and `yes` stay strings), keeping
// every node's position and bounding depth and alias expansion.
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <regex>
#include <string>
#include <unordered_set>

#include "common/json_pointer.h"
#include "common/source_doc.h"

namespace chainctl {
namespace {

SourcePos ToPos(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

// Resolves a plain scalar by the YAML 1.2 core schema.
nlohmann::json ResolvePlainScalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kOct("0o[0-7]+");
  static const std::regex kHex("0x[0-9a-fA-F]+");
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
  if (s.size() <= 40 && (std::regex_match(s, kOct) || std::regex_match(s, kHex))) {
    uint64_t u;
    int base = s[1] == 'o' ? 8 : 16;
    if (std::from_chars(begin + 2, end, u, base).ec == std::errc()) return u;
    return s;
  }
  if (s.size() <= 400 && std::regex_match(s, kFloat)) return std::strtod(s.c_str(), nullptr);
  std::string_view v = s;
  bool sign = v[0] == '-' || v[0] == '+';
  std::string_view unsigned_v = sign ? v.substr(1) : v;
  if (unsigned_v == ".inf" || unsigned_v == ".Inf" || unsigned_v == ".INF") {
    return v[0] == '-' ? -std::numeric_limits<double>::infinity()
                       : std::numeric_limits<double>::infinity();
  }
  if (v == ".nan" || v == ".NaN" || v == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

class YamlConverter {
 public:
  YamlConverter(const ParseLimits& limits, SourceDoc* doc, Diagnostics* diags)
      : limits_(limits), doc_(doc), diags_(diags) {}

  // Converts `node` into *out. Returns false on an error that stops the
  // conversion (limits); other errors are reported and conversion goes on.
  bool Convert(const YAML::Node& node, const std::string& pointer, int depth, bool in_alias,
               nlohmann::json* out);

 private:
  bool Error(const YAML::Node& node, const std::string& pointer, std::string message) {
    diags_->push_back(
        {doc_->file, ToPos(node.Mark()), PointerToFieldPath(pointer), std::move(message)});
    return false;
  }
  bool ConvertScalar(const YAML::Node& node, const std::string& pointer, nlohmann::json* out);
  bool ConvertMap(const YAML::Node& node, const std::string& pointer, int depth, bool in_alias,
                  nlohmann::json* out);

  const ParseLimits& limits_;
  SourceDoc* doc_;
  Diagnostics* diags_;
  size_t nodes_ = 0;
  size_t alias_nodes_ = 0;
  std::unordered_set<int> seen_;  // Mark::pos of nodes already converted
};

bool YamlConverter::ConvertScalar(const YAML::Node& node, const std::string& pointer,
                                  nlohmann::json* out) {
  const std::string& tag = node.Tag();
  const std::string& value = node.Scalar();
  static const std::string kCore = "tag:yaml.org,2002:";
  if (tag == "?") {
    *out = ResolvePlainScalar(value);
  } else if (tag == "!" || tag == kCore + "str") {
    *out = value;
  } else if (tag == kCore + "int" || tag == kCore + "float" || tag == kCore + "bool" ||
             tag == kCore + "null") {
    *out = ResolvePlainScalar(value);
    bool ok = (tag == kCore + "int" && out->is_number_integer()) ||
              (tag == kCore + "float" && out->is_number()) ||
              (tag == kCore + "bool" && out->is_boolean()) ||
              (tag == kCore + "null" && out->is_null());
    if (!ok) {
      Error(node, pointer, "\"" + value + "\" is not a valid " + tag.substr(kCore.size()));
      *out = value;
    }
  } else {
    Error(node, pointer, "unsupported YAML tag \"" + tag + "\"");
    *out = value;
  }
  return true;
}

bool YamlConverter::ConvertMap(const YAML::Node& node, const std::string& pointer, int depth,
                               bool in_alias, nlohmann::json* out) {
  *out = nlohmann::json::object();
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node& key = it->first;
    if (!key.IsScalar()) {
      Error(key, pointer, "mapping keys must be plain strings");
      continue;
    }
    const std::string& name = key.Scalar();
    std::string member = pointer + "/" + EscapePointerToken(name);
    if (out->contains(name)) {
      SourcePos first = doc_->key_pos[member];
      Error(key, member,
            "duplicate key \"" + name + "\" (first defined at line " +
                std::to_string(first.line) + ")");
    } else if (!in_alias) {
      doc_->key_pos[member] = ToPos(key.Mark());
    }
    nlohmann::json value;
    if (!Convert(it->second, member, depth + 1, in_alias, &value)) return false;
    if (!in_alias && it->second.IsNull()) {
      // An empty value (`key:`) has the position of whatever follows it.
      doc_->value_pos[member] = ToPos(key.Mark());
    }
    (*out)[name] = std::move(value);
  }
  return true;
}

bool YamlConverter::Convert(const YAML::Node& node, const std::string& pointer, int depth,
                            bool in_alias, nlohmann::json* out) {
  if (depth > limits_.max_depth) {
    return Error(node, "",
                 "nesting deeper than " + std::to_string(limits_.max_depth) +
                     " levels (or a YAML alias that contains itself)");
  }
  const YAML::Mark mark = node.Mark();
  if (!mark.is_null() && !seen_.insert(mark.pos).second) in_alias = true;
  if (++nodes_ > limits_.max_nodes) {
    return Error(node, "",
                 "document has more than " + std::to_string(limits_.max_nodes) + " nodes");
  }
  if (in_alias && ++alias_nodes_ > limits_.max_alias_nodes) {
    return Error(node, "",
                 "YAML aliases expand to more than " + std::to_string(limits_.max_alias_nodes) +
                     " nodes");
  }
  if (!in_alias && !mark.is_null()) doc_->value_pos[pointer] = ToPos(mark);
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      *out = nullptr;
      return true;
    case YAML::NodeType::Scalar:
      return ConvertScalar(node, pointer, out);
    case YAML::NodeType::Sequence: {
      *out = nlohmann::json::array();
      size_t index = 0;
      for (const YAML::Node& item : node) {
        nlohmann::json value;
        if (!Convert(item, pointer + "/" + std::to_string(index++), depth + 1, in_alias, &value)) {
          return false;
        }
        out->push_back(std::move(value));
      }
      return true;
    }
    case YAML::NodeType::Map:
      return ConvertMap(node, pointer, depth, in_alias, out);
  }
  return true;
}

}  // namespace

bool ParseYamlDoc(std::string_view text, const ParseLimits& limits, SourceDoc* doc,
                  Diagnostics* diags) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    diags->push_back({doc->file, ToPos(e.mark), "",
                      "nesting deeper than " + std::to_string(limits.max_depth) + " levels"});
    return false;
  } catch (const YAML::Exception& e) {
    diags->push_back({doc->file, ToPos(e.mark), "", "invalid YAML: " + e.msg});
    return false;
  }
  if (docs.empty()) {
    diags->push_back({doc->file, {}, "", "empty file: expected a chain definition with 'tasks'"});
    return false;
  }
  if (docs.size() > 1) {
    diags->push_back({doc->file, ToPos(docs[1].Mark()), "",
                      "the file holds " + std::to_string(docs.size()) +
                          " YAML documents; a chain file holds one"});
    return false;
  }
  YamlConverter converter(limits, doc, diags);
  return converter.Convert(docs[0], "", 0, false, &doc->root);
}

}  // namespace chainctl
