// JSON text that comes from outside chaind (a task's stdout, a worker's reply, a request body,
// a history line) is bytes until checked (DESIGN.md §3): it becomes a nlohmann::json value only
// once it is known to be UTF-8, to nest no deeper than the limit and to be JSON. A json value
// made this way can be dumped without error_handler_t::replace and copied or dumped without
// recursing deeper than the limit (nlohmann's copy, comparison and dump are recursive: a value
// 100,000 levels deep overflows the stack).
//
// Nothing here throws.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace chainctl {

// The one nesting limit of every JSON (and YAML) document chaind reads: chain files, history
// lines, request bodies, task outputs and worker replies. 64 levels of arrays and objects (a
// top-level [] is level 1); a chain file needs about 10. ParseLimits::max_depth defaults to it.
inline constexpr int kMaxJsonDepth = 64;

// Offset (from 0) of the first byte of `text` that is not part of a well-formed UTF-8
// sequence (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF: what nlohmann
// accepts and dumps), or nullopt if `text` is all UTF-8.
std::optional<size_t> FindInvalidUtf8(std::string_view text);

// The deepest nesting of arrays and objects in `text`, read as JSON (brackets inside strings
// do not count), without parsing it. Exact for JSON text; for other text, at least the depth
// nlohmann's parser reaches before it finds the error.
size_t JsonNestingDepth(std::string_view text);

// JSON text of `value`, compact, never throwing: a string that is not UTF-8 (a value not
// made by DecodeJsonText) has its bad bytes replaced by U+FFFD.
std::string DumpJson(const nlohmann::json& value);

// `bytes` made printable for a message, always valid UTF-8: well-formed UTF-8 is kept, any
// other byte is written \xHH, and newlines, tabs and other control characters are \n, \t,
// \xHH. At most `max_bytes` of `bytes` are shown (cut on a character boundary, then "...").
std::string PrintableBytes(std::string_view bytes, size_t max_bytes = 200);

// Why DecodeJsonText refused a text; checked in this order.
enum class JsonTextFault {
  kNone,
  kNotUtf8,  // "not valid UTF-8 at byte N (0xHH)", N counted from 1
  kTooDeep,  // "nests deeper than 64 levels"
  kNotJson,  // "not JSON (byte N): syntax error while parsing ..." (nlohmann's reason)
};

// Decodes `text` into *value, or fails with *fault and *err (the reasons above, without a
// subject: the caller says whose text it was). `max_depth` is kMaxJsonDepth but for tests.
bool DecodeJsonText(std::string_view text, nlohmann::json* value, JsonTextFault* fault,
                    std::string* err, int max_depth = kMaxJsonDepth);

}  // namespace chainctl
