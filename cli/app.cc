#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <ostream>

#include "common/version.h"

namespace chainctl::cli {

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "chainctl runs task chains: DAGs of tasks whose JSON output feeds the next.\n"
      "See `chainctl COMMAND --help` and man chainctl(1).",
      "chainctl"};
  app.set_version_flag("--version", std::string("chainctl ") + kVersion);
  app.require_subcommand(1);

  DaemonOptions daemon;
  app.add_option("--socket", daemon.socket,
                 "chaind's socket (default: $CHAINCTL_SOCKET, "
                 "$XDG_RUNTIME_DIR/chainctl/chaind.sock)");
  app.add_option("--state-dir", daemon.state_dir, "chaind's state folder, for a started daemon");
  app.add_flag(
      "--no-autostart", [&](int64_t) { daemon.autostart = false; },
      "Do not start chaind when none answers (also CHAINCTL_NO_AUTOSTART=1)");

  ValidateOptions validate;
  CLI::App* validate_cmd = app.add_subcommand(
      "validate", "Check chain files offline; exit 0 if all are valid, 2 otherwise");
  validate_cmd->add_option("FILE", validate.files, "Chain files (YAML or JSON; - for stdin)")
      ->required();
  validate_cmd->add_option("-o,--output", validate.output, "Output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  GraphOptions graph;
  CLI::App* graph_cmd = app.add_subcommand("graph", "Draw a chain's DAG");
  graph_cmd->add_option("FILE", graph.file, "Chain file (YAML or JSON; - for stdin)")->required();
  graph_cmd->add_option("-f,--format", graph.format, "Output format")
      ->check(CLI::IsMember({"dot", "mermaid", "text"}))
      ->capture_default_str();

  auto add_output = [](CLI::App* cmd, std::string* output) {
    cmd->add_option("-o,--output", *output, "table, json or yaml (default: table on a terminal)")
        ->check(CLI::IsMember({"table", "json", "yaml"}));
  };

  ApplyOptions apply;
  CLI::App* apply_cmd = app.add_subcommand("apply", "Store a chain in chaind's registry");
  apply_cmd->add_option("-f,--file", apply.file, "Chain file (YAML or JSON; - for stdin)")
      ->required();
  add_output(apply_cmd, &apply.output);

  GetOptions get;
  CLI::App* get_cmd = app.add_subcommand("get", "Show a chain, a task or a run");
  get_cmd->add_option("KIND", get.kind, "chain, task or run")
      ->required()
      ->check(CLI::IsMember({"chain", "task", "run"}));
  get_cmd->add_option("ID", get.id, "Its id")->required();
  get_cmd->add_option("--version", get.version, "A chain's version (default: the latest)");
  add_output(get_cmd, &get.output);

  GetOptions remove;
  CLI::App* delete_cmd = app.add_subcommand("delete", "Remove a chain and all its versions");
  delete_cmd->add_option("KIND", remove.kind, "chain")->required()->check(CLI::IsMember({"chain"}));
  delete_cmd->add_option("ID", remove.id, "Its id")->required();

  ListOptions list;
  CLI::App* list_cmd = app.add_subcommand("list", "List chains, tasks or runs");
  list_cmd->add_option("KIND", list.kind, "chains, tasks or runs")
      ->required()
      ->check(CLI::IsMember({"chains", "tasks", "runs"}));
  add_output(list_cmd, &list.output);
  RunsOptions runs;
  list_cmd->add_option("--chain", runs.chain, "runs: only those of this chain");
  list_cmd->add_option("--limit", runs.limit, "runs: at most this many, newest first")
      ->capture_default_str();

  RunOptions run;
  auto add_input = [&run](CLI::App* cmd) {
    cmd->add_option("-i,--input", run.input, "Trigger input: JSON, @FILE or - for stdin")
        ->capture_default_str();
    cmd->add_option("--progress", run.progress, "auto, tty, plain or quiet")
        ->check(CLI::IsMember({"auto", "tty", "plain", "quiet"}))
        ->capture_default_str();
  };
  CLI::App* trigger_cmd = app.add_subcommand(
      "trigger", "Start a run of a stored chain; print its id (or its output with --wait)");
  trigger_cmd->add_option("CHAIN", run.chain, "The chain's id")->required();
  add_input(trigger_cmd);
  trigger_cmd->add_flag("--wait", run.wait, "Wait for the run to end; print its output");
  trigger_cmd->add_flag("--follow", run.follow,
                        "Show progress until the run ends (implies --wait)");
  CLI::App* run_cmd = app.add_subcommand(
      "run", "Apply a chain file, run it and show progress; print the output on success");
  run_cmd->add_option("-f,--file", run.file, "Chain file (YAML or JSON; - for stdin)")->required();
  add_input(run_cmd);
  CLI::App* cancel_cmd = app.add_subcommand("cancel", "Cancel a run");
  cancel_cmd->add_option("RUN", run.run_id, "The run's id")->required();
  CLI::App* resume_cmd = app.add_subcommand(
      "resume", "Run again what did not succeed in a failed, cancelled or interrupted run");
  resume_cmd->add_option("RUN", run.run_id, "The run's id")->required();
  resume_cmd->add_flag("--wait", run.wait, "Wait for the run to end; print its output");
  resume_cmd->add_flag("--follow", run.follow, "Show progress until the run ends (implies --wait)");
  resume_cmd->add_option("--progress", run.progress, "auto, tty, plain or quiet")
      ->check(CLI::IsMember({"auto", "tty", "plain", "quiet"}))
      ->capture_default_str();

  CLI::App* logs_cmd = app.add_subcommand("logs", "Print the stderr of a run's tasks");
  logs_cmd->add_option("RUN", runs.run_id, "The run's id")->required();
  logs_cmd->add_option("TASK", runs.task, "Only this task (default: every task that started)");
  logs_cmd->add_flag("-f,--follow", runs.follow, "Print the task's log as it grows, until it ends");

  RunsOptions history;
  CLI::App* history_cmd = app.add_subcommand(
      "history",
      "Show past task executions; `history export FILE` writes them as JSONL v1, "
      "`history import FILE` reads them from a .jsonl or .jsonl.gz file");
  history_cmd->add_option("ACTION", history.action, "export or import")
      ->check(CLI::IsMember({"export", "import"}));
  history_cmd->add_option("FILE", history.file,
                          "export: the file to write (- for stdout); import: the file to read "
                          "(.jsonl or .jsonl.gz; - for stdin)");
  history_cmd->add_option("--task", history.task, "Only this task");
  history_cmd->add_option("--chain", history.chain, "Only this chain");
  history_cmd->add_option("--run", history.run_id, "Only this run");
  history_cmd->add_option("--limit", history.limit, "At most this many, newest first")
      ->capture_default_str();
  add_output(history_cmd, &history.output);

  ModelOptions model;
  CLI::App* model_cmd = app.add_subcommand(
      "model", "The predictor: evaluate it offline on a history file, train it, show it");
  model_cmd->add_option("ACTION", model.action, "evaluate, train or status")
      ->required()
      ->check(CLI::IsMember({"evaluate", "train", "status"}));
  model_cmd->add_option("--history", model.history_file,
                        "evaluate: history JSONL v1 (.jsonl or .jsonl.gz; - for stdin)");
  model_cmd->add_option("--chain", model.chain, "evaluate: only this chain's records");
  model_cmd->add_option("--set", model.settings,
                        "evaluate: a model parameter, KEY=NUMBER (max_order, half_life, "
                        "prior_strength, escape, unlikely_factor)");
  add_output(model_cmd, &model.output);

  PredictOptions predict;
  CLI::App* predict_cmd =
      app.add_subcommand("predict", "What the model expects next after a task (or a run's start)");
  predict_cmd
      ->add_option("--after", predict.after,
                   "The task just started; repeat (oldest first) for the run's last tasks")
      ->delimiter(',');
  predict_cmd->add_option("--chain", predict.chain,
                          "The chain (needed if the task runs in several; alone: its first task)");
  predict_cmd->add_option("--limit", predict.limit, "At most this many candidates")
      ->capture_default_str();
  add_output(predict_cmd, &predict.output);

  SimpleOptions prefetch;
  CLI::App* prefetch_cmd =
      app.add_subcommand("prefetch", "The prefetcher: hits, waste, queue and warm pool");
  std::string prefetch_action = "status";
  prefetch_cmd->add_option("ACTION", prefetch_action, "status (the default)")
      ->check(CLI::IsMember({"status"}));
  add_output(prefetch_cmd, &prefetch.output);
  SimpleOptions stats;
  CLI::App* stats_cmd = app.add_subcommand(
      "stats", "chaind's figures: its own CPU and memory, runs, model, prefetching");
  add_output(stats_cmd, &stats.output);

  DaemonCommandOptions daemon_cmd_options;
  CLI::App* daemon_cmd = app.add_subcommand("daemon", "Start, stop or look at chaind");
  daemon_cmd->add_option("ACTION", daemon_cmd_options.action, "start, stop, status or run")
      ->required()
      ->check(CLI::IsMember({"start", "stop", "status", "run"}));

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
  if (validate_cmd->parsed()) return RunValidate(validate, out, err);
  if (graph_cmd->parsed()) return RunGraph(graph, out, err);
  apply.daemon = get.daemon = remove.daemon = list.daemon = daemon_cmd_options.daemon = daemon;
  run.daemon = runs.daemon = history.daemon = daemon;
  if (apply_cmd->parsed()) return RunApply(apply, out, err);
  if (get_cmd->parsed() && get.kind == "run") {
    runs.run_id = get.id;
    runs.output = get.output;
    return RunGetRun(runs, out, err);
  }
  if (get_cmd->parsed()) return RunGet(get, out, err);
  if (delete_cmd->parsed()) return RunDelete(remove, out, err);
  if (list_cmd->parsed() && list.kind == "runs") {
    runs.output = list.output;
    return RunListRuns(runs, out, err);
  }
  if (list_cmd->parsed()) return RunList(list, out, err);
  if (trigger_cmd->parsed()) return RunTrigger(run, out, err);
  if (run_cmd->parsed()) return RunRun(run, out, err);
  if (cancel_cmd->parsed()) return RunCancel(run, out, err);
  if (resume_cmd->parsed()) return RunResume(run, out, err);
  if (logs_cmd->parsed()) return RunLogs(runs, out, err);
  if (history_cmd->parsed()) {
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
  if (model_cmd->parsed()) {
    if (model.action == "evaluate" && model.history_file.empty()) {
      err << "chainctl: model evaluate needs --history FILE\n";
      return kExitInvalid;
    }
    model.daemon = daemon;
    return RunModel(model, out, err);
  }
  if (predict_cmd->parsed()) {
    predict.daemon = daemon;
    return RunPredict(predict, out, err);
  }
  if (prefetch_cmd->parsed()) {
    prefetch.daemon = daemon;
    return RunPrefetchStatus(prefetch, out, err);
  }
  if (stats_cmd->parsed()) {
    stats.daemon = daemon;
    return RunStats(stats, out, err);
  }
  if (daemon_cmd->parsed()) return RunDaemonCommand(daemon_cmd_options, out, err);
  return kExitInvalid;
}

}  // namespace chainctl::cli
