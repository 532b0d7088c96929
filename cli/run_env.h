// What `chainctl run|trigger|resume` sends with a run besides its input (DESIGN.md §7): the
// caller's environment for its tasks, and (run) the tasks selected.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/app.h"

namespace chainctl::cli {

// The run's environment from the options, as {NAME: value}: first the variables of `environ`
// (chainctl's own, NULL-terminated) whose names match a --pass-env NAME or glob, then each
// --env-file in turn, then each --env (NAME=VALUE, or NAME alone for chainctl's own value); a
// later one wins. False with *err (naming the option, never a value) for a malformed --env, an
// unreadable or malformed file, a --pass-env NAME that chainctl does not have, or a name that
// is invalid or CHAIN_*.
bool CallerEnv(const RunOptions& options, char** environ, nlohmann::json* env, std::string* err);

// The tasks that a run of `chain` limited to `targets` runs: the targets and what they depend
// on, in the order they may run (all of them for no targets). False with *err for a target
// that is not a task of the chain.
bool SelectedTasks(const Chain& chain, const std::vector<std::string>& targets,
                   std::vector<int>* order, std::string* err);

// Where `task` runs, relative to the chain file's folder ("." for that folder itself).
std::string TaskFolder(const Chain& chain, const TaskSpec& task);

// `chainctl run --dry-run`: what would run, in order, where and how, and the names of the
// environment the run is given; nothing is sent to chaind.
void PrintDryRun(const Chain& chain, const std::vector<int>& order, const nlohmann::json& env,
                 std::ostream& out);

}  // namespace chainctl::cli
