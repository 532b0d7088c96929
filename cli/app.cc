#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <ostream>

#include "cli/cmd_cache.h"
#include "cli/cmd_setup.h"
#include "cli/cmd_trace.h"
#include "common/version.h"

namespace chainctl::cli {
namespace {

// What a subcommand does once the command line is parsed; returns its exit status (ExitCode).
using CommandAction = std::function<int(std::ostream& out, std::ostream& err)>;

// A subcommand of the app and its action. The action owns the options CLI11 writes into during
// the parse (CLI11 keeps their addresses), so it must outlive the parse.
struct Command {
  const CLI::App* subcommand;
  CommandAction run;
};
using Commands = std::vector<Command>;

// The action of a command that talks to chaind: `run` with *options, their `daemon` set to the
// common options. `daemon` is read when the action runs (after the parse has filled it in).
template <typename Options>
CommandAction DaemonAction(std::shared_ptr<Options> options, const DaemonOptions& daemon,
                           int (*run)(const Options&, std::ostream&, std::ostream&)) {
  return [options, &daemon, run](std::ostream& out, std::ostream& err) {
    options->daemon = daemon;
    return run(*options, out, err);
  };
}

// -o,--output of a command that prints what chaind answers (ApplyOptions::output and the like).
void AddOutputOption(CLI::App* cmd, std::string* output) {
  cmd->add_option("-o,--output", *output, "table, json or yaml (default: table on a terminal)")
      ->check(CLI::IsMember({"table", "json", "yaml"}));
}

// validate FILE..., graph FILE: chain files, offline.
void AddChainFileCommands(CLI::App* app, Commands* commands) {
  auto validate = std::make_shared<ValidateOptions>();
  CLI::App* validate_cmd = app->add_subcommand(
      "validate", "Check chain files offline; exit 0 if all are valid, 2 otherwise");
  validate_cmd->add_option("FILE", validate->files, "Chain files (YAML or JSON; - for stdin)")
      ->required();
  validate_cmd->add_option("-o,--output", validate->output, "Output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  commands->push_back({validate_cmd, [validate](std::ostream& out, std::ostream& err) {
                         return RunValidate(*validate, out, err);
                       }});

  auto graph = std::make_shared<GraphOptions>();
  CLI::App* graph_cmd = app->add_subcommand("graph", "Draw a chain's DAG");
  graph_cmd->add_option("FILE", graph->file, "Chain file (YAML or JSON; - for stdin)")->required();
  graph_cmd->add_option("-f,--format", graph->format, "Output format")
      ->check(CLI::IsMember({"dot", "mermaid", "text"}))
      ->capture_default_str();
  commands->push_back({graph_cmd, [graph](std::ostream& out, std::ostream& err) {
                         return RunGraph(*graph, out, err);
                       }});

  auto tasks = std::make_shared<TasksOptions>();
  CLI::App* tasks_cmd =
      app->add_subcommand("tasks", "List a chain file's tasks with their descriptions");
  tasks_cmd->add_option("FILE", tasks->file, "Chain file (YAML or JSON; - for stdin)")->required();
  AddOutputOption(tasks_cmd, &tasks->output);
  commands->push_back({tasks_cmd, [tasks](std::ostream& out, std::ostream& err) {
                         return RunTasks(*tasks, out, err);
                       }});
}

// get KIND ID: a run is shown as `get run` (cmd_runs.cc), a chain or a task from the registry.
int RunGetKind(const GetOptions& get, std::ostream& out, std::ostream& err) {
  if (get.kind != "run") return RunGet(get, out, err);
  RunsOptions run;
  run.daemon = get.daemon;
  run.run_id = get.id;
  run.output = get.output;
  return RunGetRun(run, out, err);
}

// apply, get, delete, list: chaind's registry (and its runs, for get run and list runs).
void AddRegistryCommands(CLI::App* app, const DaemonOptions& daemon, Commands* commands) {
  auto apply = std::make_shared<ApplyOptions>();
  CLI::App* apply_cmd = app->add_subcommand("apply", "Store a chain in chaind's registry");
  apply_cmd->add_option("-f,--file", apply->file, "Chain file (YAML or JSON; - for stdin)")
      ->required();
  AddOutputOption(apply_cmd, &apply->output);
  commands->push_back({apply_cmd, DaemonAction(apply, daemon, RunApply)});

  auto get = std::make_shared<GetOptions>();
  CLI::App* get_cmd = app->add_subcommand("get", "Show a chain, a task or a run");
  get_cmd->add_option("KIND", get->kind, "chain, task or run")
      ->required()
      ->check(CLI::IsMember({"chain", "task", "run"}));
  get_cmd->add_option("ID", get->id, "Its id")->required();
  get_cmd->add_option("--version", get->version, "A chain's version (default: the latest)");
  AddOutputOption(get_cmd, &get->output);
  commands->push_back({get_cmd, DaemonAction(get, daemon, RunGetKind)});

  auto remove = std::make_shared<GetOptions>();
  CLI::App* delete_cmd = app->add_subcommand("delete", "Remove a chain and all its versions");
  delete_cmd->add_option("KIND", remove->kind, "chain")
      ->required()
      ->check(CLI::IsMember({"chain"}));
  delete_cmd->add_option("ID", remove->id, "Its id")->required();
  commands->push_back({delete_cmd, DaemonAction(remove, daemon, RunDelete)});

  auto list = std::make_shared<ListOptions>();
  auto list_runs = std::make_shared<RunsOptions>();  // list runs: --chain, --limit
  CLI::App* list_cmd = app->add_subcommand("list", "List chains, tasks or runs");
  list_cmd->add_option("KIND", list->kind, "chains, tasks or runs")
      ->required()
      ->check(CLI::IsMember({"chains", "tasks", "runs"}));
  AddOutputOption(list_cmd, &list->output);
  list_cmd->add_option("--chain", list_runs->chain, "runs: only those of this chain");
  list_cmd->add_option("--limit", list_runs->limit, "runs: at most this many, newest first")
      ->capture_default_str();
  // list runs is cmd_runs.cc's (with --chain and --limit); list chains|tasks the registry's.
  auto run_list = [list, list_runs, &daemon](std::ostream& out, std::ostream& err) {
    if (list->kind != "runs") {
      list->daemon = daemon;
      return RunList(*list, out, err);
    }
    list_runs->daemon = daemon;
    list_runs->output = list->output;
    return RunListRuns(*list_runs, out, err);
  };
  commands->push_back({list_cmd, run_list});
}

// --progress of a command that can follow a run (trigger, run, resume).
void AddProgressOption(CLI::App* cmd, std::string* progress) {
  cmd->add_option("--progress", *progress, "auto, tty, plain or quiet")
      ->check(CLI::IsMember({"auto", "tty", "plain", "quiet"}))
      ->capture_default_str();
}

// --wait and --follow of a command that starts a run (trigger, resume).
void AddWaitFlags(CLI::App* cmd, RunOptions* run) {
  cmd->add_flag("--wait", run->wait, "Wait for the run to end; print its output");
  cmd->add_flag("--follow", run->follow, "Show progress until the run ends (implies --wait)");
}

// --env, --env-file, --pass-env of a command that starts or resumes a run: the caller's
// environment for its tasks (run_env.h).
void AddEnvOptions(CLI::App* cmd, RunOptions* run) {
  cmd->add_option("-e,--env", run->env,
                  "NAME=VALUE (or NAME: chainctl's own value) for the run's tasks; repeat. Never "
                  "stored: `resume` needs it again");
  cmd->add_option("--env-file", run->env_files, "A file of NAME=VALUE lines for the run's tasks");
  cmd->add_option("--pass-env", run->pass_env,
                  "Pass chainctl's own NAME, or the names matching a glob such as 'CI_*'");
}

// -i,--input, --progress and the environment of a command that starts a run of a chain
// (trigger, run).
void AddInputOptions(CLI::App* cmd, RunOptions* run) {
  cmd->add_option("-i,--input", run->input, "Trigger input: JSON, @FILE or - for stdin")
      ->capture_default_str();
  AddProgressOption(cmd, &run->progress);
  AddEnvOptions(cmd, run);
}

// --junit and --summary of a command that can wait for a run (trigger, run, resume): what
// the ended run is reported as (ci_report.h).
void AddReportOptions(CLI::App* cmd, RunOptions* run) {
  cmd->add_option("--junit", run->junit_file,
                  "When the run ends, write it as JUnit XML to FILE (a testcase per task)");
  cmd->add_option("--summary", run->summary_file,
                  "When the run ends, write it as JSON to FILE (every task: state, attempts, "
                  "times, warm or cold)");
}

// --no-cache and --explain of a command that starts a run of a chain (trigger, run): the task
// cache (DESIGN.md §4 "Cache").
void AddCacheFlags(CLI::App* cmd, RunOptions* run) {
  cmd->add_flag("--no-cache", run->no_cache,
                "Run every task, restoring nothing from the task cache (results are still stored)");
  cmd->add_flag(
      "--explain", run->explain,
      "When the run ends, say on stderr why each task ran or was cached (trigger: implies --wait)");
}

// trigger, run, cancel, resume, logs: runs and their tasks' logs.
void AddRunCommands(CLI::App* app, const DaemonOptions& daemon, Commands* commands) {
  auto run = std::make_shared<RunOptions>();  // one for trigger, run, cancel and resume
  CLI::App* trigger_cmd = app->add_subcommand(
      "trigger", "Start a run of a stored chain; print its id (or its output with --wait)");
  trigger_cmd->add_option("CHAIN", run->chain, "The chain's id")->required();
  trigger_cmd->add_option("TASK", run->tasks, "Run only these tasks and what they depend on");
  AddInputOptions(trigger_cmd, run.get());
  AddWaitFlags(trigger_cmd, run.get());
  AddCacheFlags(trigger_cmd, run.get());
  AddReportOptions(trigger_cmd, run.get());
  commands->push_back({trigger_cmd, DaemonAction(run, daemon, RunTrigger)});

  CLI::App* run_cmd = app->add_subcommand(
      "run", "Apply a chain file, run it and show progress; print the output on success");
  run_cmd->add_option("-f,--file", run->file, "Chain file (YAML or JSON; - for stdin)")->required();
  run_cmd->add_option("TASK", run->tasks, "Run only these tasks and what they depend on");
  run_cmd->add_flag("--dry-run", run->dry_run,
                    "Print what would run, in order and where, and run nothing");
  run_cmd->add_flag("--no-daemon", run->no_daemon,
                    "Run with a private chaind that ends with this command (for CI machines)");
  run_cmd->add_flag("--watch", run->watch,
                    "After the run, run again whenever the chain file or a file its tasks' "
                    "sources match changes, until Ctrl-C");
  AddInputOptions(run_cmd, run.get());
  AddCacheFlags(run_cmd, run.get());
  AddReportOptions(run_cmd, run.get());
  commands->push_back({run_cmd, DaemonAction(run, daemon, RunRun)});

  CLI::App* cancel_cmd = app->add_subcommand("cancel", "Cancel a run");
  cancel_cmd->add_option("RUN", run->run_id, "The run's id")->required();
  commands->push_back({cancel_cmd, DaemonAction(run, daemon, RunCancel)});

  CLI::App* resume_cmd = app->add_subcommand(
      "resume", "Run again what did not succeed in a failed, cancelled or interrupted run");
  resume_cmd->add_option("RUN", run->run_id, "The run's id")->required();
  AddWaitFlags(resume_cmd, run.get());
  AddProgressOption(resume_cmd, &run->progress);
  AddEnvOptions(resume_cmd, run.get());
  AddReportOptions(resume_cmd, run.get());
  commands->push_back({resume_cmd, DaemonAction(run, daemon, RunResume)});

  auto logs = std::make_shared<RunsOptions>();
  CLI::App* logs_cmd = app->add_subcommand("logs", "Print the stderr of a run's tasks");
  logs_cmd->add_option("RUN", logs->run_id, "The run's id")->required();
  logs_cmd->add_option("TASK", logs->task, "Only this task (default: every task that started)");
  logs_cmd->add_flag("-f,--follow", logs->follow,
                     "Print the task's log as it grows, until it ends");
  commands->push_back({logs_cmd, DaemonAction(logs, daemon, RunLogs)});
}

// history [export FILE | import FILE]: the checks of its arguments CLI11 cannot make (exit 2),
// then the command.
int RunHistoryCommand(const RunsOptions& history, std::ostream& out, std::ostream& err) {
  if (history.action == "export" && history.file.empty()) {
    err << "chainctl: history export needs a FILE (- for stdout)\n";
    return kExitInvalid;
  }
  if (history.action == "import") {
    if (history.file.empty()) {
      err << "chainctl: history import needs a FILE (- for stdin)\n";
      return kExitInvalid;
    }
    if (!history.task.empty() || !history.chain.empty() || !history.run_id.empty()) {
      err << "chainctl: history import imports every record of FILE: no --task, --chain or "
             "--run\n";
      return kExitInvalid;
    }
    return RunHistoryImport(history, out, err);
  }
  return RunHistory(history, out, err);
}

// history: past task executions, shown, exported or imported.
void AddHistoryCommand(CLI::App* app, const DaemonOptions& daemon, Commands* commands) {
  auto history = std::make_shared<RunsOptions>();
  CLI::App* history_cmd = app->add_subcommand(
      "history",
      "Show past task executions; `history export FILE` writes them as JSONL v1, "
      "`history import FILE` reads them from a .jsonl or .jsonl.gz file");
  history_cmd->add_option("ACTION", history->action, "export or import")
      ->check(CLI::IsMember({"export", "import"}));
  history_cmd->add_option("FILE", history->file,
                          "export: the file to write (- for stdout); import: the file to read "
                          "(.jsonl or .jsonl.gz; - for stdin)");
  history_cmd->add_option("--task", history->task, "Only this task");
  history_cmd->add_option("--chain", history->chain, "Only this chain");
  history_cmd->add_option("--run", history->run_id, "Only this run");
  history_cmd->add_option("--limit", history->limit, "At most this many, newest first")
      ->capture_default_str();
  AddOutputOption(history_cmd, &history->output);
  commands->push_back({history_cmd, DaemonAction(history, daemon, RunHistoryCommand)});
}

// model ACTION: evaluate needs --history FILE, which CLI11 cannot require (exit 2); then the
// command.
int RunModelCommand(const ModelOptions& model, std::ostream& out, std::ostream& err) {
  if (model.action == "evaluate" && model.history_file.empty()) {
    err << "chainctl: model evaluate needs --history FILE\n";
    return kExitInvalid;
  }
  return RunModel(model, out, err);
}

// model, predict: the predictor.
void AddModelCommands(CLI::App* app, const DaemonOptions& daemon, Commands* commands) {
  auto model = std::make_shared<ModelOptions>();
  CLI::App* model_cmd = app->add_subcommand(
      "model", "The predictor: evaluate it offline on a history file, train it, show it");
  model_cmd->add_option("ACTION", model->action, "evaluate, train or status")
      ->required()
      ->check(CLI::IsMember({"evaluate", "train", "status"}));
  model_cmd->add_option("--history", model->history_file,
                        "evaluate: history JSONL v1 (.jsonl or .jsonl.gz; - for stdin)");
  model_cmd->add_option("--chain", model->chain, "evaluate: only this chain's records");
  model_cmd->add_option("--set", model->settings,
                        "evaluate: a model parameter, KEY=NUMBER (max_order, half_life, "
                        "prior_strength, escape, unlikely_factor)");
  AddOutputOption(model_cmd, &model->output);
  commands->push_back({model_cmd, DaemonAction(model, daemon, RunModelCommand)});

  auto predict = std::make_shared<PredictOptions>();
  CLI::App* predict_cmd =
      app->add_subcommand("predict", "What the model expects next after a task (or a run's start)");
  predict_cmd
      ->add_option("--after", predict->after,
                   "The task just started; repeat (oldest first) for the run's last tasks")
      ->delimiter(',');
  predict_cmd->add_option("--chain", predict->chain,
                          "The chain (needed if the task runs in several; alone: its first task)");
  predict_cmd->add_option("--limit", predict->limit, "At most this many candidates")
      ->capture_default_str();
  AddOutputOption(predict_cmd, &predict->output);
  commands->push_back({predict_cmd, DaemonAction(predict, daemon, RunPredict)});
}

// prefetch [status], stats: the prefetcher's and chaind's figures.
void AddPrefetchCommands(CLI::App* app, const DaemonOptions& daemon, Commands* commands) {
  auto prefetch = std::make_shared<SimpleOptions>();
  auto prefetch_action = std::make_shared<std::string>("status");  // the only one
  CLI::App* prefetch_cmd =
      app->add_subcommand("prefetch", "The prefetcher: hits, waste, queue and warm pool");
  prefetch_cmd->add_option("ACTION", *prefetch_action, "status (the default)")
      ->check(CLI::IsMember({"status"}));
  AddOutputOption(prefetch_cmd, &prefetch->output);
  // It holds prefetch_action as well: the parse writes into it.
  auto run_prefetch = [prefetch, prefetch_action, &daemon](std::ostream& out, std::ostream& err) {
    prefetch->daemon = daemon;
    return RunPrefetchStatus(*prefetch, out, err);
  };
  commands->push_back({prefetch_cmd, run_prefetch});

  auto stats = std::make_shared<SimpleOptions>();
  CLI::App* stats_cmd = app->add_subcommand(
      "stats", "chaind's figures: its own CPU and memory, runs, model, prefetching");
  AddOutputOption(stats_cmd, &stats->output);
  commands->push_back({stats_cmd, DaemonAction(stats, daemon, RunStats)});
}

// cache ACTION: the task cache of chaind (cmd_cache.h).
void AddCacheCommand(CLI::App* app, const DaemonOptions& daemon, Commands* commands) {
  auto cache = std::make_shared<CacheOptions>();
  CLI::App* cache_cmd = app->add_subcommand(
      "cache", "The task cache: its size (stats), pruned to a budget (prune), emptied (clear)");
  cache_cmd->add_option("ACTION", cache->action, "stats, prune or clear")
      ->required()
      ->check(CLI::IsMember({"stats", "prune", "clear"}));
  cache_cmd->add_option("--max-size", cache->max_size,
                        "prune: to this size, e.g. 1Gi (default: chaind's --cache-size)");
  AddOutputOption(cache_cmd, &cache->output);
  commands->push_back({cache_cmd, DaemonAction(cache, daemon, RunCache)});
}

// daemon ACTION: start, stop or look at chaind.
void AddDaemonCommand(CLI::App* app, const DaemonOptions& daemon, Commands* commands) {
  auto daemon_command = std::make_shared<DaemonCommandOptions>();
  CLI::App* daemon_cmd = app->add_subcommand("daemon", "Start, stop or look at chaind");
  daemon_cmd->add_option("ACTION", daemon_command->action, "start, stop, status or run")
      ->required()
      ->check(CLI::IsMember({"start", "stop", "status", "run"}));
  AddOutputOption(daemon_cmd, &daemon_command->output);
  commands->push_back({daemon_cmd, DaemonAction(daemon_command, daemon, RunDaemonCommand)});
}

// trace RUN -o FILE: a run as Chrome trace JSON (cmd_trace.h).
void AddTraceCommand(CLI::App* app, const DaemonOptions& daemon, Commands* commands) {
  auto trace = std::make_shared<TraceOptions>();
  CLI::App* trace_cmd = app->add_subcommand(
      "trace", "Write a run as Chrome trace JSON (Perfetto, chrome://tracing): a track per slot");
  trace_cmd->add_option("RUN", trace->run_id, "The run's id")->required();
  trace_cmd->add_option("-o,--output", trace->file, "The file to write (- for stdout)")->required();
  commands->push_back({trace_cmd, DaemonAction(trace, daemon, RunTrace)});
}

// completion SHELL, schema: what a shell and an editor need (cmd_setup.h). completion walks
// *app, which outlives the parse and the actions.
void AddSetupCommands(CLI::App* app, Commands* commands) {
  auto shell = std::make_shared<std::string>();
  CLI::App* completion_cmd = app->add_subcommand(
      "completion", "Print a shell completion script, e.g. source <(chainctl completion bash)");
  completion_cmd->add_option("SHELL", *shell, "bash, zsh or fish")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh", "fish"}));
  commands->push_back({completion_cmd, [app, shell](std::ostream& out, std::ostream& err) {
                         return RunCompletion(app, *shell, out, err);
                       }});

  CLI::App* schema_cmd = app->add_subcommand(
      "schema", "Print the JSON Schema of chain files (for editors: yaml-language-server)");
  commands->push_back(
      {schema_cmd, [](std::ostream& out, std::ostream&) { return RunSchema(out); }});
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "chainctl runs task chains: DAGs of tasks whose JSON output feeds the next.\n"
      "See `chainctl COMMAND --help` and man chainctl(1).",
      "chainctl"};
  app.set_version_flag("--version", std::string("chainctl ") + kVersion);
  app.require_subcommand(1);
  // Global flags anywhere: `chainctl run -f F --socket S` as well as `chainctl --socket S run
  // -f F` (subcommands made from here on inherit it, and hand options they lack to the app).
  app.fallthrough();

  DaemonOptions daemon;
  app.add_option("--socket", daemon.socket,
                 "chaind's socket (default: $CHAINCTL_SOCKET, "
                 "$XDG_RUNTIME_DIR/chainctl/chaind.sock)");
  app.add_option("--state-dir", daemon.state_dir, "chaind's state folder, for a started daemon");
  app.add_flag(
      "--no-autostart", [&](int64_t) { daemon.autostart = false; },
      "Do not start chaind when none answers (also CHAINCTL_NO_AUTOSTART=1)");

  // Registered in the order `chainctl --help` lists them.
  Commands commands;
  AddChainFileCommands(&app, &commands);
  AddRegistryCommands(&app, daemon, &commands);
  AddRunCommands(&app, daemon, &commands);
  AddHistoryCommand(&app, daemon, &commands);
  AddModelCommands(&app, daemon, &commands);
  AddPrefetchCommands(&app, daemon, &commands);
  AddCacheCommand(&app, daemon, &commands);
  AddDaemonCommand(&app, daemon, &commands);
  AddSetupCommands(&app, &commands);
  AddTraceCommand(&app, daemon, &commands);

  // CLI11 wants argv in reverse order without the program name.
  std::vector<std::string> rest(args.rbegin(), args.rend());
  if (!rest.empty()) rest.pop_back();
  try {
    app.parse(rest);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    out << app.version() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    err << "chainctl: " << e.what() << "\n";
    std::vector<CLI::App*> used = app.get_subcommands();
    err << "Run '" << (used.empty() ? "chainctl" : "chainctl " + used[0]->get_name())
        << " --help' for usage.\n";
    return kExitInvalid;
  }
  for (const Command& command : commands) {
    if (command.subcommand->parsed()) return command.run(out, err);
  }
  return kExitInvalid;
}

}  // namespace chainctl::cli
