// The chainctl command line: subcommands, their options and exit statuses
// (DESIGN.md §7). main() only calls RunCli.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "cli/daemon_client.h"
#include "common/chain/chain.h"

namespace chainctl::cli {

// Exit statuses (DESIGN.md §7).
enum ExitCode {
  kExitOk = 0,
  kExitChainFailed = 1,
  kExitInvalid = 2,      // usage, definition or input; nothing ran
  kExitUnreachable = 3,  // daemon unreachable or API error
  kExitNotFound = 4,     // no such chain, run or task
  kExitInterrupted = 130,
  kExitTerminated = 143,  // SIGTERM or SIGHUP to a waiting command: the run cancelled
};

// Runs chainctl with `args` (args[0] is the program name). Output goes to
// `out` (results, parseable) and `err` (diagnostics, progress).
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Loads a chain file; on failure prints its errors to `err`.
std::optional<Chain> LoadOrReport(const std::string& file, std::ostream& err);

struct ValidateOptions {
  std::vector<std::string> files;
  std::string output = "text";  // text | json
};
int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err);

struct GraphOptions {
  std::string file;
  std::string format = "text";  // dot | mermaid | text
};
int RunGraph(const GraphOptions& options, std::ostream& out, std::ostream& err);

// tasks FILE (cmd_tasks.cc): the tasks, their dependencies, where they run, their descriptions.
struct TasksOptions {
  std::string file;
  std::string output;  // table, json or yaml; "": table on a terminal
};
int RunTasks(const TasksOptions& options, std::ostream& out, std::ostream& err);

// Commands that talk to chaind; `output` is table, json, yaml or "" (table on
// a terminal, JSON otherwise).
struct ApplyOptions {
  DaemonOptions daemon;
  std::string file;
  std::string output;
};
int RunApply(const ApplyOptions& options, std::ostream& out, std::ostream& err);

struct GetOptions {
  DaemonOptions daemon;
  std::string kind;  // chain | task
  std::string id;
  int version = 0;  // chains: 0 = latest
  std::string output;
};
int RunGet(const GetOptions& options, std::ostream& out, std::ostream& err);
int RunDelete(const GetOptions& options, std::ostream& out, std::ostream& err);

struct ListOptions {
  DaemonOptions daemon;
  std::string kind;  // chains | tasks
  std::string output;
};
int RunList(const ListOptions& options, std::ostream& out, std::ostream& err);

// trigger, run, cancel, resume (cmd_run.cc).
struct RunOptions {
  DaemonOptions daemon;
  std::string chain;   // trigger
  std::string file;    // run
  std::string run_id;  // cancel, resume
  std::string input;   // JSON text, @FILE or -; empty: {}
  bool wait = false;
  bool follow = false;
  std::string progress = "auto";  // auto | tty | plain | quiet
  // run, trigger, resume: the caller's environment for the run's tasks, in the order given (a
  // later one wins). Values are sent with the request and never stored (DESIGN.md §7).
  std::vector<std::string> env;        // --env K=V
  std::vector<std::string> env_files;  // --env-file F (KEY=VALUE lines)
  std::vector<std::string> pass_env;   // --pass-env NAME|GLOB: from chainctl's own environment
  // run, trigger: only these tasks and what they depend on (empty: all); run --dry-run prints
  // what would run.
  std::vector<std::string> tasks;
  bool dry_run = false;
  bool no_daemon = false;    // run: a private chaind for this command only
  std::string junit_file;    // --junit FILE: one testcase per task (ci_report.h)
  std::string summary_file;  // --summary FILE: the run as JSON (ci_report.h)
  bool no_cache = false;     // run, trigger: every task runs; results are still stored
  bool explain = false;      // run, trigger: then why each task ran or was cached (stderr)
  bool watch = false;        // run: again whenever a source or the chain file changes (watch.h)
};
int RunTrigger(const RunOptions& options, std::ostream& out, std::ostream& err);
int RunRun(const RunOptions& options, std::ostream& out, std::ostream& err);
int RunCancel(const RunOptions& options, std::ostream& out, std::ostream& err);
int RunResume(const RunOptions& options, std::ostream& out, std::ostream& err);

// get run, list runs, logs, history (cmd_runs.cc).
struct RunsOptions {
  DaemonOptions daemon;
  std::string run_id;
  std::string task;
  std::string chain;
  std::string action;  // history: "" (show), "export" or "import"
  std::string file;    // history export: "-" for stdout; import: "-" for stdin
  size_t limit = 50;
  bool follow = false;  // logs -f
  std::string output;
};
int RunGetRun(const RunsOptions& options, std::ostream& out, std::ostream& err);
int RunListRuns(const RunsOptions& options, std::ostream& out, std::ostream& err);
int RunLogs(const RunsOptions& options, std::ostream& out, std::ostream& err);
int RunHistory(const RunsOptions& options, std::ostream& out, std::ostream& err);
// history import FILE (cmd_history.cc): reads and checks the whole file (.jsonl or .jsonl.gz,
// - for stdin), exit 2 at its first bad line with nothing sent; then POSTs it in batches of at
// most 4 MiB and 20,000 records, each imported in a transaction of its own: a failure after
// the first batch leaves the earlier batches stored (and says how many records). chaind skips
// records stored already (History::Import), so running the import again completes it.
int RunHistoryImport(const RunsOptions& options, std::ostream& out, std::ostream& err);

// model evaluate|train|status and predict (cmd_model.cc).
struct ModelOptions {
  DaemonOptions daemon;
  std::string action;                 // evaluate | train | status
  std::string history_file;           // evaluate: JSONL v1, plain or gzip; - for stdin
  std::string chain;                  // evaluate: only this chain's records
  std::vector<std::string> settings;  // evaluate: KEY=VALUE model parameters
  std::string output;
};
int RunModel(const ModelOptions& options, std::ostream& out, std::ostream& err);

struct PredictOptions {
  DaemonOptions daemon;
  std::vector<std::string> after;  // the run's last task starts, oldest first
  std::string chain;
  size_t limit = 10;
  std::string output;
};
int RunPredict(const PredictOptions& options, std::ostream& out, std::ostream& err);

// A command that only reads from the daemon: chainctl prefetch status, chainctl stats.
struct SimpleOptions {
  DaemonOptions daemon;
  std::string output;
};
int RunPrefetchStatus(const SimpleOptions& options, std::ostream& out, std::ostream& err);
int RunStats(const SimpleOptions& options, std::ostream& out, std::ostream& err);

struct DaemonCommandOptions {
  DaemonOptions daemon;
  std::string action;  // start | stop | status | run
  std::string output;  // status: table, json or yaml
};
int RunDaemonCommand(const DaemonCommandOptions& options, std::ostream& out, std::ostream& err);

}  // namespace chainctl::cli
