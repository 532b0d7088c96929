// What goes into a task and what comes out of it (DESIGN.md §3), as functions without
// processes: the input built from the trigger input and the dependencies' outputs, the output
// read from what the task printed, schema violations as one line, and files handed from a
// task's CHAIN_OUTDIR to its dependents.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/chain/chain.h"
#include "common/json_schema.h"

namespace chainctl::daemon {

// The input of `task`: with an input_map, an object of the values its pointers select in
// {"trigger": trigger, "<dep_id>": output, ...}; else for a root the trigger input, for one
// dependency its output, for several {"<dep_id>": output, ...}. `dep_outputs[k]` is the output
// of task.dependencies[k] (nullopt: skipped, given as null). Fails if a pointer selects nothing.
bool BuildTaskInput(const TaskSpec& task, const nlohmann::json& trigger,
                    const std::vector<std::optional<nlohmann::json>>& dep_outputs,
                    nlohmann::json* input, std::string* err);

// The output of a task from the bytes it printed (or wrote to $CHAIN_OUTPUT_FILE), which are
// checked before anything else reads them (common/json_text.h): the JSON value in them; if they
// are not JSON and the task has no output schema (`schema_free`), the text as {"stdout": text}.
// Fails, with the cause for the task, on bytes that are not UTF-8 ("output is not valid UTF-8
// at byte 3 (0xff)"), on JSON that nests deeper than kMaxJsonDepth ("output nests deeper than
// 64 levels"), and on non-JSON text when an output schema is declared ("output_schema: the
// output is not JSON: ..."). A value made here is valid UTF-8 and at most kMaxJsonDepth deep.
bool ParseTaskOutput(std::string_view text, bool schema_free, nlohmann::json* output,
                     std::string* err);

// "/rows: expected integer, got string; /name: ..." (at most `max` violations, then "...").
std::string DescribeViolations(const std::vector<JsonSchema::Violation>& violations,
                               size_t max = 5);

// True if `schema` accepts every value (true or {}): nothing to check.
bool AcceptsAnything(const nlohmann::json& schema);

// Makes `to` (created) hold the files under `from`, recursively: hard links, or copies where
// linking fails (another file system). Symlinks are recreated, not followed. On failure, the
// errno is put in `*error_number` when given.
bool LinkTree(const std::string& from, const std::string& to, std::string* err,
              int* error_number = nullptr);

// True if the folder exists and holds at least one entry.
bool HasEntries(const std::string& dir);

}  // namespace chainctl::daemon
