// The completion scripts of `chainctl completion SHELL`, written from a CompletionSpec
// (cmd_setup.h). Each script finds, in the words before the cursor, the subcommand (the first
// word that is neither an option nor an option's value), how many positional arguments follow
// it, and whether the cursor is at an option's value; then it offers what that place takes.
#include <sstream>

#include "cli/cmd_setup.h"

namespace chainctl::cli {
namespace {

// `text` in single quotes for sh, bash and zsh.
std::string Quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// `text` in single quotes for fish, where \ and ' are escaped with a backslash.
std::string FishQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "'";
}

std::string Join(const std::vector<std::string>& words, const std::string& separator) {
  std::string joined;
  for (const std::string& word : words) joined += (joined.empty() ? "" : separator) + word;
  return joined;
}

// The options `command` accepts: its own, and the app's where it falls through to them.
std::vector<const CompletionArg*> OptionsOf(const CompletionSpec& spec,
                                            const CompletionCommand* command) {
  std::vector<const CompletionArg*> options;
  if (!command || command->global_options) {
    for (const CompletionArg& option : spec.options) options.push_back(&option);
  }
  if (command) {
    for (const CompletionArg& option : command->options) options.push_back(&option);
  }
  return options;
}

std::vector<std::string> CommandNames(const CompletionSpec& spec) {
  std::vector<std::string> names;
  for (const CompletionCommand& command : spec.commands) names.push_back(command.name);
  return names;
}

// ---- bash ----

// What completes a value in bash (the helpers of kBashDriver).
std::string BashValue(const CompletionArg& arg) {
  switch (arg.kind) {
    case ValueKind::kChoices:
      return "_chainctl_words " + Quote(Join(arg.choices, " "));
    case ValueKind::kFile:
      return "_chainctl_files";
    case ValueKind::kDir:
      return "_chainctl_dirs";
    case ValueKind::kNone:
      return ":";
  }
  return ":";
}

// The case clauses, one per command ("" for none), of the generated functions.
void WriteBashTables(const CompletionSpec& spec, std::ostream& out) {
  std::ostringstream options, takes_value, value, positional;
  std::vector<const CompletionCommand*> commands = {nullptr};
  for (const CompletionCommand& command : spec.commands) commands.push_back(&command);
  for (const CompletionCommand* command : commands) {
    std::string name = command ? command->name : "";
    std::vector<std::string> all;
    for (const CompletionArg* option : OptionsOf(spec, command)) {
      all.insert(all.end(), option->names.begin(), option->names.end());
      if (!option->takes_value) continue;
      std::vector<std::string> patterns;
      for (const std::string& n : option->names) patterns.push_back(Quote(name + " " + n));
      takes_value << "    " << Join(patterns, "|") << ") return 0 ;;\n";
      value << "    " << Join(patterns, "|") << ") " << BashValue(*option) << " ;;\n";
    }
    options << "    " << Quote(name) << ") echo " << Quote(Join(all, " ")) << " ;;\n";
    if (!command) {
      positional << "    '') _chainctl_words " << Quote(Join(CommandNames(spec), " ")) << " ;;\n";
      continue;
    }
    positional << "    " << Quote(name) << ")\n      case $2 in\n";
    for (size_t i = 0; i < command->positionals.size(); ++i) {
      const CompletionArg& arg = command->positionals[i];
      bool last = i + 1 == command->positionals.size();
      positional << "        " << (last && arg.repeats ? "*" : std::to_string(i)) << ") "
                 << BashValue(arg) << " ;;\n";
    }
    positional << "      esac ;;\n";
  }
  out << "# The options of command $1 (\"\" before the command).\n"
      << "_chainctl_options() {\n  case $1 in\n"
      << options.str() << "  esac\n}\n\n"
      << "# Succeeds if option $2 of command $1 takes a value.\n"
      << "_chainctl_takes_value() {\n  case \"$1 $2\" in\n"
      << takes_value.str() << "  esac\n  return 1\n}\n\n"
      << "# Completes $cur as the value of option $2 of command $1.\n"
      << "_chainctl_value() {\n  case \"$1 $2\" in\n"
      << value.str() << "  esac\n}\n\n"
      << "# Completes $cur as positional argument $2 (from 0) of command $1 (\"\": the command).\n"
      << "_chainctl_positional() {\n  case $1 in\n"
      << positional.str() << "  esac\n}\n\n";
}

constexpr const char* kBashDriver = R"sh(_chainctl_words() {
  local IFS=$' \t\n'
  COMPREPLY=($(compgen -W "$1" -- "$cur"))
}

_chainctl_files() {
  compopt -o filenames 2>/dev/null
  local IFS=$'\n'
  COMPREPLY=($(compgen -f -- "$cur"))
}

_chainctl_dirs() {
  compopt -o filenames 2>/dev/null
  local IFS=$'\n'
  COMPREPLY=($(compgen -d -- "$cur"))
}

_chainctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} command='' option='' npos=0 i word
  COMPREPLY=()
  # bash splits --option=value at the =, into three words.
  if [[ $cur == = ]]; then cur=''; fi
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ $word == = ]]; then continue; fi
    if [[ -n $option ]]; then option=''; continue; fi
    if [[ $word == -* ]]; then
      if _chainctl_takes_value "$command" "$word"; then option=$word; fi
    elif [[ -z $command ]]; then
      command=$word
    else
      npos=$((npos + 1))
    fi
  done
  if [[ -n $option ]]; then
    _chainctl_value "$command" "$option"
  elif [[ $cur == -* ]]; then
    _chainctl_words "$(_chainctl_options "$command")"
  else
    _chainctl_positional "$command" "$npos"
  fi
  return 0
}

complete -F _chainctl chainctl
)sh";

// ---- zsh ----

// An _arguments spec of an option or a positional (`position` from 1; 0: an option).
std::string ZshSpec(const CompletionArg& arg, size_t position) {
  std::string help;
  for (char c : arg.help) help += c == '[' ? '(' : c == ']' ? ')' : c;
  std::string action;
  switch (arg.kind) {
    case ValueKind::kChoices:
      action = "(" + Join(arg.choices, " ") + ")";
      break;
    case ValueKind::kFile:
      action = "_files";
      break;
    case ValueKind::kDir:
      action = "_files -/";
      break;
    case ValueKind::kNone:
      action = " ";
      break;
  }
  if (position > 0) {
    std::string where = arg.repeats ? "*" : std::to_string(position);
    return Quote(where + ":" + arg.names[0] + ":" + action);
  }
  std::string message = arg.names.back().substr(arg.names.back().find_first_not_of('-'));
  std::string value = arg.takes_value ? ":" + message + ":" + action : "";
  if (arg.names.size() == 1) {
    return Quote((arg.repeats ? "*" : "") + arg.names[0] + "[" + help + "]" + value);
  }
  std::string prefix = arg.repeats ? "*" : "(" + Join(arg.names, " ") + ")";
  return Quote(prefix) + "{" + Join(arg.names, ",") + "}" + Quote("[" + help + "]" + value);
}

std::string ZshArguments(const CompletionSpec& spec, const CompletionCommand* command,
                         const std::string& indent) {
  std::string specs;
  for (const CompletionArg* option : OptionsOf(spec, command)) {
    specs += " \\\n" + indent + ZshSpec(*option, 0);
  }
  if (command) {
    for (size_t i = 0; i < command->positionals.size(); ++i) {
      specs += " \\\n" + indent + ZshSpec(command->positionals[i], i + 1);
    }
  }
  return specs;
}

// ---- fish ----

// The `complete` arguments of a value: what fish offers after the option or at the position.
std::string FishValue(const CompletionArg& arg) {
  switch (arg.kind) {
    case ValueKind::kChoices:
      return " -f -a " + FishQuote(Join(arg.choices, " "));
    case ValueKind::kFile:
      return " -F";
    case ValueKind::kDir:
      return " -f -a '(__fish_complete_directories)'";
    case ValueKind::kNone:
      return " -f";
  }
  return " -f";
}

void WriteFishOption(const std::string& condition, const CompletionArg& option, std::ostream& out) {
  out << "complete -c chainctl -n " << FishQuote(condition);
  for (const std::string& name : option.names) {
    out << (name.starts_with("--") ? " -l " + name.substr(2) : " -s " + name.substr(1));
  }
  if (option.takes_value) out << " -r" << FishValue(option);
  out << " -d " << FishQuote(option.help) << "\n";
}

constexpr const char* kFishScan =
    R"fish(# Prints three lines: the command ("-" before it), how many positional arguments follow it, and
# the option whose value the cursor is at ("-" if none).
function __chainctl_scan
    set -l command -
    set -l npos 0
    set -l option -
    set -l first 1
    for word in (commandline -opc)
        if test $first = 1
            set first 0
        else if test "$option" != -
            set option -
        else if string match -q -- '-*' $word
            if not string match -q -- '*=*' $word; and contains -- $word (__chainctl_valued $command)
                set option $word
            end
        else if test "$command" = -
            set command $word
        else
            set npos (math $npos + 1)
        end
    end
    printf '%s\n' $command $npos $option
end

# Succeeds if the command is one of the arguments ("-": none yet).
function __chainctl_on
    set -l scan (__chainctl_scan)
    contains -- $scan[1] $argv
end

# Succeeds at positional argument N (from 0; N+: N or later) of command $argv[1].
function __chainctl_at --argument-names command n
    set -l scan (__chainctl_scan)
    test "$scan[1]" = "$command"; and test "$scan[3]" = -; or return 1
    if string match -q -- '*+' $n
        test $scan[2] -ge (string trim -r -c + -- $n)
    else
        test $scan[2] -eq $n
    end
end

complete -c chainctl -f
)fish";

}  // namespace

std::string BashCompletion(const CompletionSpec& spec) {
  std::ostringstream out;
  out << "# bash completion for chainctl, generated by `chainctl completion bash` from the "
         "command\n"
         "# line chainctl parses. Load it with `source <(chainctl completion bash)`, or install "
         "it\n"
         "# as share/bash-completion/completions/chainctl.\n\n";
  WriteBashTables(spec, out);
  out << kBashDriver;
  return out.str();
}

std::string ZshCompletion(const CompletionSpec& spec) {
  std::ostringstream out;
  out << "#compdef chainctl\n"
         "# zsh completion for chainctl, generated by `chainctl completion zsh` from the command\n"
         "# line chainctl parses. Install it as _chainctl in a folder of $fpath, or load it with\n"
         "# `source <(chainctl completion zsh)` after compinit.\n\n"
         "_chainctl() {\n"
         "  local curcontext=$curcontext state line ret=1\n"
         "  typeset -A opt_args\n"
         "  _arguments -C"
      << ZshArguments(spec, nullptr, "    ")
      << " \\\n    '1:command:->command' \\\n    '*::argument:->argument' && ret=0\n"
         "  case $state in\n    command)\n      local -a commands=(\n";
  for (const CompletionCommand& command : spec.commands) {
    std::string help;
    for (char c : command.help) help += c == ':' ? std::string("\\:") : std::string(1, c);
    out << "        " << Quote(command.name + ":" + help) << "\n";
  }
  out << "      )\n      _describe -t commands 'chainctl command' commands && ret=0 ;;\n"
         "    argument)\n      case $words[1] in\n";
  for (const CompletionCommand& command : spec.commands) {
    out << "        " << Quote(command.name) << ")\n          _arguments"
        << ZshArguments(spec, &command, "            ") << " && ret=0 ;;\n";
  }
  out << "      esac ;;\n  esac\n  return ret\n}\n\n"
         "if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n"
         "  _chainctl \"$@\"\nelse\n  compdef _chainctl chainctl\nfi\n";
  return out.str();
}

std::string FishCompletion(const CompletionSpec& spec) {
  std::ostringstream out;
  out << "# fish completion for chainctl, generated by `chainctl completion fish` from the "
         "command\n"
         "# line chainctl parses. Install it as vendor_completions.d/chainctl.fish, or load it\n"
         "# with `chainctl completion fish | source`.\n\n"
         "# The options of command $argv[1] (\"-\": none yet) that take a value.\n"
         "function __chainctl_valued\n    switch $argv[1]\n";
  std::vector<const CompletionCommand*> commands = {nullptr};
  for (const CompletionCommand& command : spec.commands) commands.push_back(&command);
  std::vector<std::string> with_globals;
  for (const CompletionCommand* command : commands) {
    std::vector<std::string> valued;
    for (const CompletionArg* option : OptionsOf(spec, command)) {
      if (option->takes_value)
        valued.insert(valued.end(), option->names.begin(), option->names.end());
    }
    if (!command || command->global_options) with_globals.push_back(command ? command->name : "-");
    out << "        case " << (command ? FishQuote(command->name) : "-") << "\n"
        << "            printf '%s\\n' " << Join(valued, " ") << "\n";
  }
  out << "    end\nend\n\n" << kFishScan << "\n";
  for (const CompletionArg& option : spec.options) {
    WriteFishOption("__chainctl_on " + Join(with_globals, " "), option, out);
  }
  for (const CompletionCommand& command : spec.commands) {
    out << "complete -c chainctl -n '__chainctl_at - 0' -a " << FishQuote(command.name) << " -d "
        << FishQuote(command.help) << "\n";
  }
  for (const CompletionCommand& command : spec.commands) {
    for (const CompletionArg& option : command.options) {
      WriteFishOption("__chainctl_on " + command.name, option, out);
    }
    for (size_t i = 0; i < command.positionals.size(); ++i) {
      const CompletionArg& arg = command.positionals[i];
      if (arg.kind == ValueKind::kNone) continue;  // an id: nothing to offer
      bool rest = arg.repeats && i + 1 == command.positionals.size();
      std::string at = command.name + " " + std::to_string(i) + (rest ? "+" : "");
      out << "complete -c chainctl -n " << FishQuote("__chainctl_at " + at) << FishValue(arg)
          << " -d " << FishQuote(arg.names[0] + ": " + arg.help) << "\n";
    }
  }
  return out.str();
}

}  // namespace chainctl::cli
