#include "common/json_schema.h"

#include <regex>
#include <string_view>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "common/json_pointer.h"
#include "common/json_schema_internal.h"

namespace chainctl {
namespace embedded {
extern const std::string_view kDraft7MetaSchema;
}

struct JsonSchema::Impl {
  nlohmann::json document;
  valijson::Schema schema;
};

namespace {

using internal::ContextToPointer;
using internal::Explain;
using internal::ExplainDuplicate;
using internal::IsSummary;
using internal::SummarizedChild;

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

std::unique_ptr<JsonSchema> JsonSchema::Compile(const nlohmann::json& schema, std::string* err) {
  if (!internal::CheckRefs(schema, err)) return nullptr;
  auto impl = std::make_unique<Impl>();
  impl->document = schema;
  auto fetch = [](const std::string& uri) -> const nlohmann::json* {
    if (internal::IsMetaSchemaUri(uri)) return &Draft7MetaSchemaDocument();
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
