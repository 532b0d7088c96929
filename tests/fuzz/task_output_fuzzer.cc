// libFuzzer target for reading what a task printed (ParseTaskOutput, daemon/run/task_io.h): any
// bytes, as the output of a task without an output schema and of one with a schema. Checks the
// documented contract: a value made is valid UTF-8 (it dumps with the strict error handler) and
// nests at most kMaxJsonDepth levels; a failure says why; the two modes agree.
// Run with scripts/fuzz output SECONDS.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/json_text.h"
#include "daemon/run/task_io.h"

namespace {

using nlohmann::json;

// Whether `value` nests at most `levels` levels of arrays and objects (a top-level [] is
// level 1). Recurses at most `levels` + 1 deep, so a value that breaks the limit cannot
// overflow the stack here.
bool NestsAtMost(const json& value, int levels) {
  if (!value.is_array() && !value.is_object()) return true;
  if (levels == 0) return false;
  for (const json& child : value) {
    if (!NestsAtMost(child, levels - 1)) return false;
  }
  return true;
}

// Whether `value` dumps without error_handler_t::replace: every string in it is UTF-8.
bool DumpsStrictly(const json& value) {
  try {
    (void)value.dump(-1, ' ', false, json::error_handler_t::strict);
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

// ParseTaskOutput's contract for one call; true if it made a value.
bool ParseChecked(std::string_view text, bool schema_free, json* output) {
  std::string err;
  bool ok = chainctl::daemon::ParseTaskOutput(text, schema_free, output, &err);
  if (!ok) {
    if (err.empty()) __builtin_trap();  // a failure says why
    return false;
  }
  // Depth first: a comparison or dump of a value deeper than the limit could itself recurse
  // far enough to overflow the stack.
  if (!NestsAtMost(*output, chainctl::kMaxJsonDepth)) __builtin_trap();
  if (!DumpsStrictly(*output)) __builtin_trap();
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  json with_schema, schema_free;
  bool json_ok = ParseChecked(text, false, &with_schema);
  bool free_ok = ParseChecked(text, true, &schema_free);
  // The schema only decides what becomes of text that is not JSON: a value read with one is
  // read the same without, and a value made only without one is the text as {"stdout": text}.
  if (json_ok) {
    if (!free_ok || schema_free != with_schema) __builtin_trap();
  } else if (free_ok && schema_free != json{{"stdout", std::string(text)}}) {
    __builtin_trap();
  }
  return 0;
}
