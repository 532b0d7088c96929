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
  return kExitInvalid;
}

}  // namespace chainctl::cli
