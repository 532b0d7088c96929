// JSON Pointers (RFC 6901) and the field paths shown to users.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chainctl {

// Splits a pointer into its unescaped reference tokens ("" -> {}).
// Returns nullopt and sets *err if `pointer` is not a valid JSON Pointer.
std::optional<std::vector<std::string>> SplitJsonPointer(std::string_view pointer,
                                                         std::string* err);

// Escapes one reference token ("~" -> "~0", "/" -> "~1").
std::string EscapePointerToken(std::string_view token);

// "/tasks/2/dependencies/0" -> "tasks[2].dependencies[0]". A token is shown
// as an index where `root` has an array at that place; without `root`,
// tokens made only of digits are. An invalid pointer is returned as it is.
std::string PointerToFieldPath(std::string_view pointer, const nlohmann::json* root = nullptr);

// Decodes URI percent-escapes ("a%2Fb" -> "a/b"), as in $ref fragments and
// request paths. Returns false if an escape is broken ("%4", "%zz").
bool PercentDecode(std::string_view in, std::string* out);

}  // namespace chainctl
