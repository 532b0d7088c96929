// JSON Schema (draft 7) validation, wrapping valijson with its nlohmann
// adapter. See tests/common/json_schema_suite_test.cc for what valijson does
// and does not support, measured on the official test suite.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace chainctl {

class JsonSchema {
 public:
  struct Violation {
    std::string pointer;  // JSON Pointer into the validated instance
    std::string message;  // what is wrong, e.g. `expected string, got integer`
  };

  // Compiles a draft-7 schema. `$ref`s may be local ("#/definitions/x") or
  // the draft-07 meta-schema's URI; other remote references are refused.
  // Returns nullptr and sets *err if the schema cannot be used.
  static std::unique_ptr<JsonSchema> Compile(const nlohmann::json& schema, std::string* err);

  // The draft-07 meta-schema, compiled once. Thread-safe.
  static const JsonSchema& MetaSchema();

  ~JsonSchema();
  JsonSchema(const JsonSchema&) = delete;
  JsonSchema& operator=(const JsonSchema&) = delete;

  // Every violated constraint, leaf-most only: valijson's "failed to validate
  // item #3"-style summaries of nested failures are left out. Messages are
  // rewritten from the schema where it helps ("must be one of: a, b"); a
  // schema may give the noun for its type and pattern errors in the
  // chainctl extension keyword "x-expected" ("a duration such as 2m").
  std::vector<Violation> Validate(const nlohmann::json& instance) const;

  // The subschema that applies to the instance node at `pointer`, following
  // properties, items, additionalProperties and local $refs (not
  // combinators); nullptr if there is none.
  const nlohmann::json* FragmentAt(std::string_view instance_pointer) const;

  // Resolves local $refs ("#/definitions/x") of a fragment of this schema.
  const nlohmann::json* Deref(const nlohmann::json* fragment) const;

  // True if `instance` is valid; stops at the first violation.
  bool Accepts(const nlohmann::json& instance) const;

 private:
  struct Impl;
  explicit JsonSchema(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Checks that `schema` is a draft-7 schema that chainctl can use: valid
// against the meta-schema, and compilable. Returns the problems found, with
// pointers into `schema`.
std::vector<JsonSchema::Violation> CheckSchemaDocument(const nlohmann::json& schema);

// The raw text of the draft-07 meta-schema (from python3-jsonschema).
const nlohmann::json& Draft7MetaSchemaDocument();

}  // namespace chainctl
