// chainctl completion bash|zsh|fish and chainctl schema (DESIGN.md §7): what a shell and an
// editor need to work with chainctl. The completion scripts are generated from the CLI11 App
// itself (DescribeApp), so they list exactly the commands, options and choices it parses.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace chainctl::cli {

// What completes the value of an option or a positional argument.
enum class ValueKind {
  kNone,     // nothing (an id, a number)
  kChoices,  // one of CompletionArg::choices
  kFile,     // a file name
  kDir,      // a folder name
};

// An option (flag or option with a value) or a positional argument, as completion sees it.
struct CompletionArg {
  // Option: its names, short ones first ("-o", "--output"); positional: its one name ("KIND").
  std::vector<std::string> names;
  std::string help;                   // the first line of its description
  bool takes_value = true;            // false: a flag
  bool repeats = false;               // may be given again (option) or takes every further word
  ValueKind kind = ValueKind::kNone;  // of its value (takes_value only)
  std::vector<std::string> choices;   // kChoices: the words it accepts
};

// A subcommand: its options and its positional arguments, in the order declared.
struct CompletionCommand {
  std::string name;
  std::string help;
  std::vector<CompletionArg> options;
  std::vector<CompletionArg> positionals;
  bool global_options = false;  // the app's own options are accepted after it too (fallthrough)
};

struct CompletionSpec {
  std::string program;                 // "chainctl"
  std::vector<CompletionArg> options;  // the app's own: before the subcommand
  std::vector<CompletionCommand> commands;
};

// The app's subcommands (one level), options and positionals, without hidden ones (CLI11's
// empty group). Choices come from an IsMember check (CLI11 describes it as "{a,b,c}"); a value
// is a file when its names or description say file, stdin, stdout or socket, a folder when a
// long name ends in "-dir".
CompletionSpec DescribeApp(CLI::App* app);

// Scripts for `spec` (completion_scripts.cc). Bash: `source` it (or install it as
// share/bash-completion/completions/PROGRAM); it defines _PROGRAM and registers it with
// `complete`. Zsh: an autoloadable #compdef file (share/zsh/vendor-completions/_PROGRAM) that also
// works with `source`. Fish: share/fish/vendor_completions.d/PROGRAM.fish.
std::string BashCompletion(const CompletionSpec& spec);
std::string ZshCompletion(const CompletionSpec& spec);
std::string FishCompletion(const CompletionSpec& spec);

// chainctl completion SHELL: prints the script for bash, zsh or fish; exit 2 for another shell.
int RunCompletion(CLI::App* app, const std::string& shell, std::ostream& out, std::ostream& err);

// chainctl schema: prints the JSON Schema of chain files that chainctl validates against
// (schemas/chain.schema.json, embedded at build time).
int RunSchema(std::ostream& out);

}  // namespace chainctl::cli
