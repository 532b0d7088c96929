// Helpers of json_schema.cc, split by concern. Not for use outside common/.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_schema.h"

namespace chainctl::internal {

// json_schema_refs.cc

// True for the draft-07 meta-schema's URI (with or without "#").
bool IsMetaSchemaUri(std::string_view uri);

// Checks every "$ref" of `schema` before valijson sees it: valijson 1.0
// recurses without end on some malformed URIs ("https:@/x") and on cycles of
// bare $refs. Allowed: local fragments that resolve ("#", "#/definitions/x")
// and the draft-07 meta-schema's URI. Sets *err and returns false otherwise.
bool CheckRefs(const nlohmann::json& schema, std::string* err);

// json_schema_messages.cc

// valijson's context {"<root>", "[tasks]", "[0]"} as a JSON Pointer.
std::string ContextToPointer(const std::vector<std::string>& context);

// valijson reports a nested failure once where it happens and again, as a
// summary, at every enclosing level; true for those summaries.
bool IsSummary(std::string_view message);

// The child a summary is about, as a pointer suffix: "Failed to validate
// item #3 in array." -> "/3"; "...property name 'x'." -> "/x"; else "".
std::string SummarizedChild(const std::string& message);

// valijson's description of a failed constraint, rewritten in terms of the
// schema fragment and the offending value when both are known.
std::string Explain(const std::string& raw, const nlohmann::json* fragment,
                    const nlohmann::json* value);

// "Elements at indexes #0 and #2 violate uniqueness constraint." becomes a
// violation at the later element that names the duplicate; false for other
// messages.
bool ExplainDuplicate(const std::string& raw, const std::string& pointer,
                      const nlohmann::json* array, JsonSchema::Violation* out);

}  // namespace chainctl::internal
