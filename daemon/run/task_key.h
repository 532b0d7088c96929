// The cache key of a task's run (DESIGN.md §4 "Cache"): what a cached result stands for.
//
// Key = XXH3-128 of a version tag and these parts, each a hash of its own:
//   definition  the task's fields that shape its result: command or executable (its path made
//               relative to the chain's folder when inside it, so that checkouts in other
//               places share keys), args, working_dir, input_map, inputs.files, sources and
//               outputs globs, output_schema, mode; not description, prefetch_weight, prewarm,
//               retry, resources, dependencies, when or trigger_rule (they decide whether and
//               how it runs, not what it computes; dependencies shape its input, which is a part)
//   executable  the content of executable_code_location when it is a file (a script edited in
//               place changes the key without being listed in sources)
//   input       the task's input JSON (compact dump, object keys sorted as nlohmann sorts them)
//   env         the `env` the task is launched with (name and value): its own, the chain's
//               env_file and the caller's (--env, --pass-env). Values are hashed, never stored.
//   dep_files   the files its dependencies wrote to $CHAIN_OUTDIR (path and content)
//   sources     common/source_hash.h's digest of the files its `sources` globs match
// Nothing else changes it: not chaind's environment, the run id, the time, the absolute place of
// the project, or the history.
//
// Thread safety: pure functions of their arguments; ComputeTaskKey reads files (blocking: the
// thread pool only) and uses the memo, which is thread-safe.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/chain/chain.h"
#include "common/file_hash.h"
#include "common/hash_memo.h"
#include "common/source_hash.h"

namespace chainctl::daemon {

// What ComputeTaskKey needs: copies, so that it can run on the thread pool while the run goes on.
struct TaskKeyRequest {
  TaskSpec spec;                      // the run's definition of the task (its env included)
  std::string input_json;             // its input, as written to input.json
  std::vector<std::string> dep_dirs;  // the out/ folders of its dependencies that hold files
};

struct TaskKeyParts {
  Hash128 definition, executable, input, env, dep_files;
  SourcesDigest sources;
};

// Hashes what the key is made of. False with *err when a source or the executable cannot be read
// (the task then runs without the cache; the error says why).
bool ComputeTaskKey(const TaskKeyRequest& request, HashMemo* memo, TaskKeyParts* parts,
                    std::string* err);

Hash128 CacheKey(const TaskKeyParts& parts);

// The parts as JSON, for TaskCache::RecordLast: {"definition", "executable", "input", "env",
// "dep_files": hex, "sources": {"PATH": hex, ...}}.
nlohmann::json DescribeKeyParts(const TaskKeyParts& parts);

// Why a task with these parts could not be restored, compared with the parts it last ran with
// (null: none recorded): "first run", "src/a.py changed", "src/b.py added", "src/c.py removed"
// (the first few, then "and N more"), "input changed", "definition changed", "executable
// changed", "env changed", "files from dependencies changed", or "no entry for this key" when
// the parts are the same (the entry was pruned or never stored).
std::string ExplainMiss(const nlohmann::json& last, const TaskKeyParts& parts);

}  // namespace chainctl::daemon
