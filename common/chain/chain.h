// The chain model (DESIGN.md §2): what a chain file says, after parsing and
// validation. Field names follow the file format.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/units.h"

namespace chainctl {

enum class PrewarmLevel { kOff, kStage, kSpawn };
enum class TaskMode { kOneshot, kWorker };
enum class TriggerRule { kAllSuccess, kAllDone, kOneSuccess };
enum class ConditionOp { kEq, kNe, kGt, kGe, kLt, kLe, kIn, kExists, kNotExists, kMatches };

// Names as written in chain files ("stage", "all_success", "not_exists"...).
const char* ToString(PrewarmLevel v);
const char* ToString(TaskMode v);
const char* ToString(TriggerRule v);
const char* ToString(ConditionOp v);
std::optional<PrewarmLevel> ParsePrewarmLevel(std::string_view s);
std::optional<TaskMode> ParseTaskMode(std::string_view s);
std::optional<TriggerRule> ParseTriggerRule(std::string_view s);
std::optional<ConditionOp> ParseConditionOp(std::string_view s);

// `when`: the value at `path` (a JSON Pointer into {"trigger": input,
// "<task_id>": output, ...}) compared with `value` by `op`.
struct Condition {
  std::string path;
  ConditionOp op = ConditionOp::kEq;
  nlohmann::json value;  // null for exists / not_exists
};

struct RetryPolicy {
  int max_attempts = 1;  // 1: no retry
  Duration initial_backoff = std::chrono::seconds(1);
  Duration max_backoff = std::chrono::seconds(30);
  double multiplier = 2.0;
};

struct ResourceRequirements {
  // Requests, admitted against chaind's capacity (0: not declared; a task that declares
  // nothing is admitted on --jobs alone).
  int64_t cpu_millis = 0;  // 1000 = one core
  uint64_t memory_bytes = 0;
  int gpu = 0;
  std::optional<Duration> timeout;  // none: no limit
  uint64_t max_output_bytes = 16ull << 20;
};

struct TaskSpec {
  std::string task_id;
  std::string description;
  // Exactly one of these is set: a path (absolute once loaded, or
  // "cas:sha256:HEX"), or a shell command for /bin/sh -c.
  std::string executable_code_location;
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  nlohmann::json input_schema = true;  // true: any JSON value
  nlohmann::json output_schema = true;
  std::vector<std::string> dependencies;
  ResourceRequirements resource_requirements;
  double prefetch_weight = 1.0;  // 0..1
  PrewarmLevel prewarm = PrewarmLevel::kStage;
  TaskMode mode = TaskMode::kOneshot;
  RetryPolicy retry;
  std::vector<Condition> when;  // all must hold
  TriggerRule trigger_rule = TriggerRule::kAllSuccess;
  std::vector<std::string> input_files;  // inputs.files: globs or http(s) URLs
  bool link_inputs = false;  // inputs.link: it never writes them, so they may be hard links
  std::map<std::string, std::string> input_map;  // input field -> JSON Pointer
  std::string working_dir;  // as written: relative to the chain's source_dir, or absolute
  // The task cache (DESIGN.md §4 "Cache"): globs relative to the chain's source_dir (the grammar
  // of common/source_glob.h) of the files whose content is part of the task's cache key, and of
  // the files it writes in the project, stored with a result and restored on a hit.
  std::vector<std::string> sources;
  std::vector<std::string> outputs;
  std::optional<bool> cache;  // `cache: on|off` as written; nullopt: not written
  // Whether results of this task are cached: `cache`, else on exactly when `sources` is declared
  // (a task with undeclared inputs cannot be cached safely).
  bool Cached() const { return cache.value_or(!sources.empty()); }

  // Made by the loader from the chain's source_dir and working_dirs, not in the file: where the
  // task runs (absolute; "" when the chain has no source_dir: in its run's $CHAIN_WORKDIR), and
  // the chain's source_dir ($CHAIN_SOURCE_DIR), so that a task can be launched on its own.
  std::string cwd;
  std::string source_dir;
};

struct Chain {
  std::string chain_id;  // empty: the daemon assigns one
  std::string description;
  std::optional<Duration> timeout;
  // The chain file's folder, absolute (chainctl fills it in; "" for a chain posted without it):
  // tasks run there or in their working_dir, and env_file is read from there (DESIGN.md §3).
  std::string source_dir;
  std::string working_dir;  // the tasks' default, relative to source_dir
  std::string env_file;     // KEY=VALUE lines read at each run's start, relative to source_dir
  std::vector<TaskSpec> tasks;
  // Not in the file: a run's copy whose tasks' `env` holds a caller's values (chaind keeps it in
  // memory only; daemon/run/run_params.cc). What is derived from it is never written either.
  bool run_values = false;

  // Index of the task with this id, or -1.
  int FindTask(std::string_view task_id) const;
};

// The chain back in file form (JSON), with defaults left out. Parsing the
// result gives the same Chain.
nlohmann::json ChainToJson(const Chain& chain);

}  // namespace chainctl
