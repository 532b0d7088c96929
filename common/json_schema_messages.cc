// Messages of JsonSchema::Validate: valijson's descriptions made readable
// with the schema fragment and the offending value.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/json_pointer.h"
#include "common/json_schema_internal.h"
#include "common/json_text.h"
#include "common/source_doc.h"

namespace chainctl::internal {
namespace {

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
      std::string cut = DumpJson(std::string(CutUtf8(s, 57)));
      return cut.insert(cut.size() - 1, "...") + " (" + std::to_string(CountChars(s)) +
             " characters)";
    }
  }
  std::string text = DumpJson(value);
  return text.size() > 60 ? std::string(CutUtf8(text, 57)) + "..." : text;
}

// Enum values for a message: strings bare, others as JSON.
std::string JoinValues(const nlohmann::json& values) {
  std::string out;
  for (const auto& v : values) {
    if (!out.empty()) out += ", ";
    out += v.is_string() ? v.get<std::string>() : DumpJson(v);
  }
  return out;
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

}  // namespace

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
    return "expected " + ExpectedNoun(f) + ", got " + JsonTypeName(*value);
  }
  if (raw.starts_with("Failed to match regex")) {
    return "expected " + ExpectedNoun(f) + ", got " + Quoted(*value);
  }
  if (raw.starts_with("Failed to match against any enum") && f.contains("enum")) {
    return "must be one of: " + JoinValues(f["enum"]) + " (got " + Quoted(*value) + ")";
  }
  if (raw.starts_with("Expected number")) {
    bool has_min = f.contains("minimum"), has_max = f.contains("maximum");
    if (has_min && has_max) {
      return "must be between " + DumpJson(f["minimum"]) + " and " + DumpJson(f["maximum"]) +
             ", got " + Quoted(*value);
    }
    if (has_min) return "must be at least " + DumpJson(f["minimum"]) + ", got " + Quoted(*value);
    if (has_max) return "must be at most " + DumpJson(f["maximum"]) + ", got " + Quoted(*value);
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

}  // namespace chainctl::internal
