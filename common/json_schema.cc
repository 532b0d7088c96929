#include "common/json_schema.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <string_view>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "common/json_pointer.h"

namespace chainctl {
namespace embedded {
extern const std::string_view kDraft7MetaSchema;
}

namespace {

constexpr std::string_view kDraft7Uri = "http://json-schema.org/draft-07/schema";

// valijson's context is {"<root>", "[tasks]", "[0]", ...}.
std::string ContextToPointer(const std::vector<std::string>& context) {
  std::string pointer;
  for (size_t i = 1; i < context.size(); ++i) {
    std::string_view part = context[i];
    if (part.size() >= 2 && part.front() == '[' && part.back() == ']') {
      part = part.substr(1, part.size() - 2);
    }
    pointer += "/" + EscapePointerToken(part);
  }
  return pointer;
}

// valijson reports a nested failure once where it happens and again at
// every enclosing level; these are the enclosing-level summaries.
bool IsSummary(std::string_view message) {
  static constexpr std::string_view kPrefixes[] = {
      "Failed to validate against schema associated with property name",
      "Failed to validate against schema associated with pattern",
      "Failed to validate item #",
      "Failed to validate against additional properties schema",
      "Failed to validate against child schema #",
      "Failed to validate against dependent schema",
  };
  for (std::string_view prefix : kPrefixes) {
    if (message.starts_with(prefix)) return true;
  }
  return false;
}

// The child a summary is about, as a pointer suffix: "Failed to validate
// item #3 in array." -> "/3"; "...property name 'x'." -> "/x".
std::string SummarizedChild(const std::string& message) {
  unsigned index = 0;
  if (sscanf(message.c_str(), "Failed to validate item #%u", &index) == 1) {
    return "/" + std::to_string(index);
  }
  static constexpr std::string_view kProperty = "property name '";
  size_t start = message.find(kProperty);
  size_t end = message.rfind("'.");
  if (start == std::string::npos || end == std::string::npos || end < start + kProperty.size()) {
    return "";
  }
  start += kProperty.size();
  return "/" + EscapePointerToken(message.substr(start, end - start));
}

}  // namespace

struct JsonSchema::Impl {
  nlohmann::json document;
  valijson::Schema schema;
};

namespace {

// JSON text of a value; invalid UTF-8 (which a YAML escape can produce) is
// replaced rather than thrown about.
std::string Dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The first `max_bytes` of `s`, not cutting a UTF-8 sequence in two.
std::string_view CutUtf8(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  while (max_bytes > 0 && (static_cast<unsigned char>(s[max_bytes]) & 0xC0) == 0x80) --max_bytes;
  return s.substr(0, max_bytes);
}

size_t CountChars(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// A value as it appears in a message: strings quoted and cut to 60 bytes,
// non-finite numbers as YAML writes them (JSON has none).
std::string Quoted(const nlohmann::json& value) {
  if (value.is_number_float() && !std::isfinite(value.get<double>())) {
    double d = value.get<double>();
    return std::isnan(d) ? ".nan" : d > 0 ? ".inf" : "-.inf";
  }
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (s.size() > 60) {
      std::string cut = Dump(std::string(CutUtf8(s, 57)));
      return cut.insert(cut.size() - 1, "...") + " (" + std::to_string(CountChars(s)) +
             " characters)";
    }
  }
  std::string text = Dump(value);
  return text.size() > 60 ? std::string(CutUtf8(text, 57)) + "..." : text;
}

std::string JoinValues(const nlohmann::json& values, bool quote) {
  std::string out;
  for (const auto& v : values) {
    if (!out.empty()) out += ", ";
    out += quote || !v.is_string() ? Dump(v) : v.get<std::string>();
  }
  return out;
}

std::string TypeOf(const nlohmann::json& value) {
  if (value.is_number_integer()) return "integer";
  if (value.is_number()) return "number";
  return value.type_name();
}

std::string ExpectedNoun(const nlohmann::json& fragment) {
  auto noun = fragment.find("x-expected");
  if (noun != fragment.end() && noun->is_string()) return noun->get<std::string>();
  auto type = fragment.find("type");
  if (type == fragment.end()) return "a value of another type";
  if (type->is_string()) return type->get<std::string>();
  std::string out;
  for (size_t i = 0; i < type->size(); ++i) {
    if (i > 0) out += i + 1 == type->size() ? " or " : ", ";
    out += (*type)[i].get<std::string>();
  }
  return out;
}

// Rewrites valijson's description of a failed constraint in terms of the
// schema fragment and the offending value, when both are known.
std::string Explain(const std::string& raw, const nlohmann::json* fragment,
                    const nlohmann::json* value) {
  std::string message = raw;
  if (message.ends_with(".")) message.pop_back();
  if (!message.empty()) message[0] = static_cast<char>(std::tolower(message[0]));
  if (message.starts_with("missing required property '")) {
    return "missing required field \"" + message.substr(27, message.size() - 28) + "\"";
  }
  if (!fragment || !fragment->is_object() || !value) return message;
  const nlohmann::json& f = *fragment;
  if (raw.starts_with("Value type not permitted")) {
    return "expected " + ExpectedNoun(f) + ", got " + TypeOf(*value);
  }
  if (raw.starts_with("Failed to match regex")) {
    return "expected " + ExpectedNoun(f) + ", got " + Quoted(*value);
  }
  if (raw.starts_with("Failed to match against any enum") && f.contains("enum")) {
    return "must be one of: " + JoinValues(f["enum"], false) + " (got " + Quoted(*value) + ")";
  }
  if (raw.starts_with("Expected number")) {
    bool has_min = f.contains("minimum"), has_max = f.contains("maximum");
    if (has_min && has_max) {
      return "must be between " + Dump(f["minimum"]) + " and " + Dump(f["maximum"]) + ", got " +
             Quoted(*value);
    }
    if (has_min) return "must be at least " + Dump(f["minimum"]) + ", got " + Quoted(*value);
    if (has_max) return "must be at most " + Dump(f["maximum"]) + ", got " + Quoted(*value);
  }
  if ((raw.starts_with("Array should contain no fewer") ||
       raw.starts_with("String should be no fewer")) &&
      (f.value("minItems", 0) == 1 || f.value("minLength", 0) == 1)) {
    return "must not be empty";
  }
  return message;
}

// "Elements at indexes #0 and #2 violate uniqueness constraint." names the
// duplicate; report it at the later element.
bool ExplainDuplicate(const std::string& raw, const std::string& pointer,
                      const nlohmann::json* array, JsonSchema::Violation* out) {
  unsigned first = 0, second = 0;
  if (sscanf(raw.c_str(), "Elements at indexes #%u and #%u", &first, &second) != 2) return false;
  out->pointer = pointer + "/" + std::to_string(second);
  out->message = "duplicate entry";
  if (array && array->is_array() && second < array->size()) {
    out->message += " " + Quoted((*array)[second]);
  }
  out->message += " (also at index " + std::to_string(first) + ")";
  return true;
}

const nlohmann::json* ValueAt(const nlohmann::json& root, const std::string& pointer) {
  try {
    return &root.at(nlohmann::json::json_pointer(pointer));
  } catch (const nlohmann::json::exception&) {
    return nullptr;
  }
}

}  // namespace

const nlohmann::json* JsonSchema::Deref(const nlohmann::json* fragment) const {
  for (int hops = 0; hops < 32 && fragment && fragment->is_object(); ++hops) {
    auto ref = fragment->find("$ref");
    if (ref == fragment->end()) return fragment;
    if (!ref->is_string() || !ref->get<std::string>().starts_with("#")) return nullptr;
    fragment = ValueAt(impl_->document, ref->get<std::string>().substr(1));
  }
  return fragment;
}

const nlohmann::json* JsonSchema::FragmentAt(std::string_view instance_pointer) const {
  std::string err;
  auto tokens = SplitJsonPointer(instance_pointer, &err);
  if (!tokens) return nullptr;
  const nlohmann::json* s = Deref(&impl_->document);
  for (const std::string& t : *tokens) {
    if (!s || !s->is_object()) return nullptr;
    auto props = s->find("properties");
    auto items = s->find("items");
    auto extra = s->find("additionalProperties");
    bool index = !t.empty() && t.find_first_not_of("0123456789") == std::string::npos;
    if (props != s->end() && props->is_object() && props->contains(t)) {
      s = &(*props)[t];
    } else if (index && items != s->end() && items->is_object()) {
      s = &*items;
    } else if (extra != s->end() && extra->is_object()) {
      s = &*extra;
    } else {
      return nullptr;
    }
    s = Deref(s);
  }
  return s;
}

JsonSchema::JsonSchema(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JsonSchema::~JsonSchema() = default;

const nlohmann::json& Draft7MetaSchemaDocument() {
  static const nlohmann::json doc = nlohmann::json::parse(embedded::kDraft7MetaSchema);
  return doc;
}

namespace {

// A URI fragment is percent-encoded ("#/percent%25field").
std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    int hi, lo;
    auto hex = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (s[i] == '%' && i + 2 < s.size() && (hi = hex(s[i + 1])) >= 0 && (lo = hex(s[i + 2])) >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool IsMetaSchemaUri(std::string_view uri) {
  if (uri.ends_with("#")) uri.remove_suffix(1);
  return uri == kDraft7Uri;
}

// Checks every "$ref" before valijson sees it: valijson 1.0 recurses without
// end on some malformed URIs ("https:@/x") and on cycles of bare $refs.
// Allowed: local fragments that resolve ("#", "#/definitions/x") and the
// draft-07 meta-schema's URI.
bool CheckRefs(const nlohmann::json& root, const nlohmann::json& node, int depth,
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
          next = &root.at(nlohmann::json::json_pointer(PercentDecode(target.substr(1))));
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
    if (!CheckRefs(root, value, depth + 1, err)) return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<JsonSchema> JsonSchema::Compile(const nlohmann::json& schema, std::string* err) {
  if (!CheckRefs(schema, schema, 0, err)) return nullptr;
  auto impl = std::make_unique<Impl>();
  impl->document = schema;
  auto fetch = [](const std::string& uri) -> const nlohmann::json* {
    if (IsMetaSchemaUri(uri)) return &Draft7MetaSchemaDocument();
    throw std::runtime_error("remote $ref \"" + uri +
                             "\" is not supported; use local references (\"#/definitions/...\")");
  };
  auto free_doc = [](const nlohmann::json*) {};  // documents are static
  try {
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(impl->document);
    parser.populateSchema(adapter, impl->schema, fetch, free_doc);
  } catch (const std::exception& e) {
    *err = e.what();
    return nullptr;
  }
  return std::unique_ptr<JsonSchema>(new JsonSchema(std::move(impl)));
}

const JsonSchema& JsonSchema::MetaSchema() {
  static const std::unique_ptr<JsonSchema> meta = [] {
    std::string err;
    auto compiled = Compile(Draft7MetaSchemaDocument(), &err);
    if (!compiled) throw std::logic_error("embedded draft-07 meta-schema: " + err);
    return compiled;
  }();
  return *meta;
}

std::vector<JsonSchema::Violation> JsonSchema::Validate(const nlohmann::json& instance) const {
  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter(instance);
  std::vector<Violation> out;
  try {
    if (validator.validate(impl_->schema, adapter, &results)) return out;
  } catch (const std::exception& e) {  // e.g. a "pattern" std::regex cannot compile
    return {{"", std::string("cannot validate: ") + e.what()}};
  }
  valijson::ValidationResults::Error error;
  std::string deepest_summary;  // where a failure with no detail of its own happened
  while (results.popError(error)) {
    if (IsSummary(error.description)) {
      std::string at = ContextToPointer(error.context) + SummarizedChild(error.description);
      if (at.size() >= deepest_summary.size()) deepest_summary = at;
      continue;
    }
    Violation v{ContextToPointer(error.context), ""};
    const nlohmann::json* value = ValueAt(instance, v.pointer);
    if (!ExplainDuplicate(error.description, v.pointer, value, &v)) {
      v.message = Explain(error.description, FragmentAt(v.pointer), value);
    }
    out.push_back(std::move(v));
  }
  if (out.empty()) {
    // A `false` schema or a failed propertyNames check fails without a
    // message of its own.
    out.push_back({deepest_summary, "is not allowed by the schema"});
  }
  return out;
}

bool JsonSchema::Accepts(const nlohmann::json& instance) const {
  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::adapters::NlohmannJsonAdapter adapter(instance);
  try {
    return validator.validate(impl_->schema, adapter, nullptr);
  } catch (const std::exception&) {
    return false;
  }
}

namespace {

// Adds a problem for every "pattern" (and patternProperties key) that is not
// an ECMAScript regex, the dialect valijson matches with. Values under
// keywords that hold data rather than schemas are not looked at.
void CheckPatterns(const nlohmann::json& schema, const std::string& pointer,
                   std::vector<JsonSchema::Violation>* problems) {
  if (!schema.is_object() && !schema.is_array()) return;
  auto check = [&](const std::string& regex, const std::string& at) {
    try {
      std::regex compiled(regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      problems->push_back({at, "invalid regular expression \"" + regex + "\": " + e.what()});
    }
  };
  for (const auto& [key, value] : schema.items()) {
    std::string at = pointer + "/" + EscapePointerToken(key);
    if (schema.is_object() && key == "pattern" && value.is_string()) {
      check(value.get<std::string>(), at);
    } else if (schema.is_object() && key == "patternProperties" && value.is_object()) {
      for (const auto& [regex, sub] : value.items()) {
        check(regex, at + "/" + EscapePointerToken(regex));
        CheckPatterns(sub, at + "/" + EscapePointerToken(regex), problems);
      }
    } else if (!(schema.is_object() &&
                 (key == "enum" || key == "const" || key == "default" || key == "examples"))) {
      CheckPatterns(value, at, problems);
    }
  }
}

}  // namespace

std::vector<JsonSchema::Violation> CheckSchemaDocument(const nlohmann::json& schema) {
  std::vector<JsonSchema::Violation> problems = JsonSchema::MetaSchema().Validate(schema);
  if (!problems.empty()) return problems;
  CheckPatterns(schema, "", &problems);
  if (!problems.empty()) return problems;
  std::string err;
  if (!JsonSchema::Compile(schema, &err)) problems.push_back({"", err});
  return problems;
}

}  // namespace chainctl
