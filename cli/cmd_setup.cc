#include "cli/cmd_setup.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <ostream>
#include <string_view>

#include "cli/app.h"

namespace chainctl {
namespace embedded {
extern const std::string_view kChainSchema;  // common/CMakeLists.txt: schemas/chain.schema.json
}

namespace cli {
namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// The words of CLI11's description of an IsMember check, "{a,b,c}"; empty for any other check.
std::vector<std::string> ChoicesOf(CLI::Option* option) {
  for (int i = 0;; ++i) {
    CLI::Validator* validator;
    try {
      validator = option->get_validator(i);
    } catch (const CLI::OptionNotFound&) {
      return {};
    }
    std::string set = validator->get_description();
    if (set.size() < 2 || set.front() != '{' || set.back() != '}') continue;
    std::vector<std::string> choices;
    std::string_view rest(set);
    rest = rest.substr(1, rest.size() - 2);
    while (!rest.empty()) {
      size_t comma = std::min(rest.find(','), rest.size());
      if (comma > 0) choices.emplace_back(rest.substr(0, comma));
      rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
    return choices;
  }
}

// What completes the value of `option` (see DescribeApp).
ValueKind KindOf(CLI::Option* option, const std::vector<std::string>& choices) {
  if (!choices.empty()) return ValueKind::kChoices;
  for (const std::string& name : option->get_lnames()) {
    if (name.size() > 4 && name.ends_with("-dir")) return ValueKind::kDir;
  }
  std::string words = Lower(option->get_name(true, true) + " " + option->get_description());
  for (const char* hint : {"file", "stdin", "stdout", "socket"}) {
    if (words.find(hint) != std::string::npos) return ValueKind::kFile;
  }
  return ValueKind::kNone;
}

CompletionArg DescribeOption(CLI::Option* option) {
  CompletionArg arg;
  if (option->nonpositional()) {
    for (const std::string& name : option->get_snames()) arg.names.push_back("-" + name);
    for (const std::string& name : option->get_lnames()) arg.names.push_back("--" + name);
  } else {
    arg.names.push_back(option->get_name());
  }
  const std::string& help = option->get_description();
  arg.help = help.substr(0, help.find('\n'));
  arg.takes_value = option->get_items_expected_max() > 0;  // flags expect 0 values
  // A vector option takes several words (FILE...) or may be given again (--set K=V --set ...).
  arg.repeats = option->get_items_expected_max() > 1 || option->get_expected_max() > 1;
  if (arg.takes_value) {
    arg.choices = ChoicesOf(option);
    arg.kind = KindOf(option, arg.choices);
  }
  return arg;
}

// Options and positionals of `app` itself (not of its subcommands), hidden ones left out.
void DescribeArgs(CLI::App* app, std::vector<CompletionArg>* options,
                  std::vector<CompletionArg>* positionals) {
  for (CLI::Option* option : app->get_options()) {
    if (option->get_group().empty()) continue;  // hidden
    CompletionArg arg = DescribeOption(option);
    if (option->nonpositional()) {
      options->push_back(std::move(arg));
    } else if (positionals) {
      positionals->push_back(std::move(arg));
    }
  }
}

}  // namespace

CompletionSpec DescribeApp(CLI::App* app) {
  CompletionSpec spec;
  spec.program = app->get_name();
  DescribeArgs(app, &spec.options, nullptr);
  auto visible = [](CLI::App* sub) { return !sub->get_group().empty() && !sub->get_disabled(); };
  for (CLI::App* sub : app->get_subcommands(visible)) {
    CompletionCommand command;
    command.name = sub->get_name();
    const std::string& help = sub->get_description();
    command.help = help.substr(0, help.find('\n'));
    command.global_options = sub->get_fallthrough();
    DescribeArgs(sub, &command.options, &command.positionals);
    spec.commands.push_back(std::move(command));
  }
  return spec;
}

int RunCompletion(CLI::App* app, const std::string& shell, std::ostream& out, std::ostream& err) {
  CompletionSpec spec = DescribeApp(app);
  if (shell == "bash") {
    out << BashCompletion(spec);
  } else if (shell == "zsh") {
    out << ZshCompletion(spec);
  } else if (shell == "fish") {
    out << FishCompletion(spec);
  } else {
    err << "chainctl: no completion for " << shell << " (bash, zsh or fish)\n";
    return kExitInvalid;
  }
  return kExitOk;
}

int RunSchema(std::ostream& out) {
  out << embedded::kChainSchema;
  if (!embedded::kChainSchema.ends_with('\n')) out << '\n';
  return kExitOk;
}

}  // namespace cli
}  // namespace chainctl
