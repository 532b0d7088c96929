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
  CLI::App* get_cmd = app.add_subcommand("get", "Show a chain or a task of the registry");
  get_cmd->add_option("KIND", get.kind, "chain or task")
      ->required()
      ->check(CLI::IsMember({"chain", "task"}));
  get_cmd->add_option("ID", get.id, "Its id")->required();
  get_cmd->add_option("--version", get.version, "A chain's version (default: the latest)");
  add_output(get_cmd, &get.output);

  GetOptions remove;
  CLI::App* delete_cmd = app.add_subcommand("delete", "Remove a chain and all its versions");
  delete_cmd->add_option("KIND", remove.kind, "chain")->required()->check(CLI::IsMember({"chain"}));
  delete_cmd->add_option("ID", remove.id, "Its id")->required();

  ListOptions list;
  CLI::App* list_cmd = app.add_subcommand("list", "List the chains or tasks of the registry");
  list_cmd->add_option("KIND", list.kind, "chains or tasks")
      ->required()
      ->check(CLI::IsMember({"chains", "tasks"}));
  add_output(list_cmd, &list.output);

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
  if (apply_cmd->parsed()) return RunApply(apply, out, err);
  if (get_cmd->parsed()) return RunGet(get, out, err);
  if (delete_cmd->parsed()) return RunDelete(remove, out, err);
  if (list_cmd->parsed()) return RunList(list, out, err);
  if (daemon_cmd->parsed()) return RunDaemonCommand(daemon_cmd_options, out, err);
  return kExitInvalid;
}

}  // namespace chainctl::cli
