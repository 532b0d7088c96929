// A chain file's text parsed into one JSON value, with the source position
// of every node, whether the text was YAML or JSON.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "common/diagnostic.h"
#include "common/json_text.h"

namespace chainctl {

enum class SourceFormat { kAuto, kJson, kYaml };

// Limits that keep hostile input cheap to reject.
struct ParseLimits {
  size_t max_bytes = 16 * 1024 * 1024;  // the daemon's default body limit
  int max_depth = kMaxJsonDepth;        // 64; a chain file needs about 10
  size_t max_nodes = 1'000'000;         // after YAML alias expansion
  size_t max_alias_nodes = 100'000;     // nodes reached through YAML aliases
};

struct SourceDoc {
  std::string file;  // display name used in diagnostics
  nlohmann::json root;
  // JSON Pointer of a node -> where the node starts; for object members also
  // where the member's key starts.
  std::unordered_map<std::string, SourcePos> value_pos;
  std::unordered_map<std::string, SourcePos> key_pos;
  // Nodes the parser has reported and replaced by null (a bad YAML tag, a
  // NaN): later checks say nothing more about them.
  std::unordered_set<std::string> reported;

  // Position of the node at `pointer`, else of its nearest known ancestor.
  SourcePos ValuePos(std::string_view pointer) const;
  // Position of the member's key, else ValuePos(pointer).
  SourcePos KeyPos(std::string_view pointer) const;
};

// Picks the format from the file name (.json, .yaml, .yml), else from the
// text (a first non-blank '{' or '[' means JSON).
SourceFormat DetectFormat(std::string_view file_name, std::string_view text);

// Parses `text` into *doc (doc->file must be set). Appends every error to
// *diags. Returns false when there is no document to check further (bad
// encoding, syntax error, limits exceeded); duplicate keys are reported but
// still give a document (the last value wins).
bool ParseSourceDoc(std::string_view text, SourceFormat format, const ParseLimits& limits,
                    SourceDoc* doc, Diagnostics* diags);

// Internal steps of ParseSourceDoc, exposed for tests.
bool ParseJsonDoc(std::string_view text, const ParseLimits& limits, SourceDoc* doc,
                  Diagnostics* diags);
bool ParseYamlDoc(std::string_view text, const ParseLimits& limits, SourceDoc* doc,
                  Diagnostics* diags);

// Line and column (in code points) of byte `offset` in `text`.
SourcePos PosAtOffset(std::string_view text, size_t offset);

// JSON type name used in messages: object, array, string, integer, number,
// boolean, null.
std::string JsonTypeName(const nlohmann::json& value);

}  // namespace chainctl
