// $ref checks done before valijson parses a schema.
#include "common/json_pointer.h"
#include "common/json_schema_internal.h"

namespace chainctl::internal {
namespace {

constexpr std::string_view kDraft7Uri = "http://json-schema.org/draft-07/schema";

// Checks every "$ref" before valijson sees it: valijson 1.0 recurses without
// end on some malformed URIs ("https:@/x") and on cycles of bare $refs.
// Allowed: local fragments that resolve ("#", "#/definitions/x") and the
// draft-07 meta-schema's URI.
bool CheckRefsIn(const nlohmann::json& root, const nlohmann::json& node, int depth,
                 std::string* err) {
  if (depth > 256) {
    *err = "schema nested deeper than 256 levels";
    return false;
  }
  if (!node.is_object() && !node.is_array()) return true;
  for (const auto& [key, value] : node.items()) {
    if (node.is_object() &&
        (key == "enum" || key == "const" || key == "default" || key == "examples")) {
      continue;  // data, not schemas
    }
    if (node.is_object() && key == "$ref" && value.is_string()) {
      const std::string ref = value.get<std::string>();
      if (IsMetaSchemaUri(ref)) continue;
      if (!ref.starts_with("#")) {
        *err = "remote $ref \"" + ref +
               "\" is not supported; use local references (\"#/definitions/...\")";
        return false;
      }
      // Follow the chain of bare $refs: it must end at a real schema.
      std::string target = ref;
      for (int hops = 0;; ++hops) {
        const nlohmann::json* next = nullptr;
        try {
          std::string fragment;  // a URI fragment is percent-encoded ("#/percent%25field")
          if (!PercentDecode(target.substr(1), &fragment)) fragment = target.substr(1);
          next = &root.at(nlohmann::json::json_pointer(fragment));
        } catch (const nlohmann::json::exception&) {
          *err = "$ref \"" + target + "\" does not point into this schema";
          return false;
        }
        auto inner = next->is_object() ? next->find("$ref") : next->end();
        if (!next->is_object() || inner == next->end() || !inner->is_string() ||
            !inner->get<std::string>().starts_with("#")) {
          break;
        }
        if (hops > 64) {
          *err = "$ref \"" + ref + "\" is part of a cycle of references";
          return false;
        }
        target = inner->get<std::string>();
      }
      continue;
    }
    if (!CheckRefsIn(root, value, depth + 1, err)) return false;
  }
  return true;
}

}  // namespace

bool IsMetaSchemaUri(std::string_view uri) {
  if (uri.ends_with("#")) uri.remove_suffix(1);
  return uri == kDraft7Uri;
}

bool CheckRefs(const nlohmann::json& schema, std::string* err) {
  return CheckRefsIn(schema, schema, 0, err);
}

}  // namespace chainctl::internal
