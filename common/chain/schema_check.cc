// The file-format check: schemas/chain.schema.json through valijson, plus
// unknown fields reported one by one at their keys (valijson names only the
// first, at the enclosing object).
#include <algorithm>

#include "common/chain/internal.h"
#include "common/json_pointer.h"
#include "common/json_schema.h"

namespace chainctl {
namespace embedded {
extern const std::string_view kChainSchema;
}

namespace internal {
namespace {

const JsonSchema& FileSchema() {
  static const std::unique_ptr<JsonSchema> schema = [] {
    std::string err;
    auto compiled = JsonSchema::Compile(nlohmann::json::parse(embedded::kChainSchema), &err);
    if (!compiled) throw std::logic_error("schemas/chain.schema.json: " + err);
    return compiled;
  }();
  return *schema;
}

void FindUnknownFields(const JsonSchema& schema, const nlohmann::json& node,
                       const std::string& pointer, Reporter* report) {
  if (!node.is_object() && !node.is_array()) return;
  const nlohmann::json* fragment = schema.FragmentAt(pointer);
  if (!fragment || !fragment->is_object()) return;
  if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) {
      FindUnknownFields(schema, node[i], pointer + "/" + std::to_string(i), report);
    }
    return;
  }
  auto props = fragment->find("properties");
  bool closed = fragment->value("additionalProperties", nlohmann::json(true)) == false;
  std::vector<std::string> known;
  if (props != fragment->end()) {
    for (const auto& [name, sub] : props->items()) known.push_back(name);
  }
  for (const auto& [key, value] : node.items()) {
    std::string member = pointer + "/" + EscapePointerToken(key);
    if (closed && key == "<<") {
      report->AtKey(member,
                    "YAML merge keys (\"<<\") are not supported; write the fields out in full");
      continue;
    }
    if (closed && std::find(known.begin(), known.end(), key) == known.end()) {
      std::string message = "unknown field \"" + key + "\"";
      std::string guess = ClosestMatch(key, known);
      if (!guess.empty()) message += " (did you mean \"" + guess + "\"?)";
      report->AtKey(member, message);
      continue;
    }
    FindUnknownFields(schema, value, member, report);
  }
}

}  // namespace

void CheckFileSchema(const SourceDoc& doc, Reporter* report) {
  const JsonSchema& schema = FileSchema();
  if (!doc.root.is_object()) {
    report->At("", "expected a mapping with a 'tasks' list at the top level, got " +
                       JsonTypeName(doc.root));
    return;
  }
  for (const JsonSchema::Violation& v : schema.Validate(doc.root)) {
    if (v.message.find("could not be validated using 'properties'") != std::string::npos) {
      continue;  // unknown fields: FindUnknownFields names each one
    }
    report->At(v.pointer, v.message);
  }
  FindUnknownFields(schema, doc.root, "", report);
}

std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates) {
  // Optimal string alignment distance: edits and adjacent swaps cost 1.
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
      }
    }
    return d[a.size()][b.size()];
  };
  if (word.size() > 64) return "";
  std::string best;
  size_t best_distance = 3;
  for (const std::string& c : candidates) {
    if (c.size() > 64) continue;
    size_t dist = distance(word, c);
    if (dist < best_distance && dist < word.size()) {
      best = c;
      best_distance = dist;
    }
  }
  return best;
}

}  // namespace internal
}  // namespace chainctl
