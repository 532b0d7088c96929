// chainctl completion and chainctl schema (cli/cmd_setup.h): the description of a CLI11 App and
// the scripts written from it. The scripts' behaviour in real shells is tested end to end
// (tests/e2e/install_test.sh).
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli/app.h"
#include "cli/cmd_setup.h"
#include "tests/cli/run_chainctl.h"
#include "tests/test_util.h"

namespace chainctl::cli {
namespace {

// A small app shaped like chainctl's: a global option, a subcommand with choices, a flag, a
// file, a folder, a repeated option and a hidden option; a second subcommand taking FILE....
class Completion : public ::testing::Test {
 protected:
  Completion() {
    app_.add_option("--socket", text_, "chaind's socket");
    app_.add_flag("--quiet", flag_, "Say less");
    CLI::App* get = app_.add_subcommand("get", "Show a thing\nMore lines of help");
    get->add_option("KIND", text_, "chain or run")->check(CLI::IsMember({"chain", "run"}));
    get->add_option("ID", text_, "Its id");
    get->add_option("-o,--output", text_, "Output format")->check(CLI::IsMember({"table", "json"}));
    get->add_flag("--wait", flag_, "Wait for it");
    get->add_option("-i,--input", text_, "JSON, @FILE or - for stdin");
    get->add_option("--state-dir", text_, "A folder");
    get->add_option("--set", many_, "KEY=VALUE");
    get->add_option("--secret", text_, "Hidden")->group("");
    CLI::App* validate = app_.add_subcommand("validate", "Check files");
    validate->add_option("FILE", many_, "Chain files");
    app_.add_subcommand("hidden", "Not shown")->group("");
  }

  const CompletionArg& Option(const CompletionCommand& command, const std::string& name) {
    for (const CompletionArg& arg : command.options) {
      for (const std::string& n : arg.names) {
        if (n == name) return arg;
      }
    }
    ADD_FAILURE() << "no option " << name;
    return command.options.at(0);
  }

  CLI::App app_{"test", "chainctl"};
  std::string text_;
  bool flag_ = false;
  std::vector<std::string> many_;
};

TEST_F(Completion, DescribesCommandsOptionsAndPositionals) {
  CompletionSpec spec = DescribeApp(&app_);
  EXPECT_EQ(spec.program, "chainctl");
  ASSERT_EQ(spec.commands.size(), 2u);  // not the hidden one
  const CompletionCommand& get = spec.commands[0];
  EXPECT_EQ(get.name, "get");
  EXPECT_EQ(get.help, "Show a thing");  // the first line
  ASSERT_EQ(get.positionals.size(), 2u);
  EXPECT_EQ(get.positionals[0].names, std::vector<std::string>{"KIND"});
  EXPECT_EQ(get.positionals[0].kind, ValueKind::kChoices);
  EXPECT_EQ(get.positionals[0].choices, (std::vector<std::string>{"chain", "run"}));
  EXPECT_EQ(get.positionals[1].kind, ValueKind::kNone);
  EXPECT_FALSE(get.positionals[1].repeats);

  const CompletionArg& output = Option(get, "--output");
  EXPECT_EQ(output.names, (std::vector<std::string>{"-o", "--output"}));
  EXPECT_TRUE(output.takes_value);
  EXPECT_EQ(output.choices, (std::vector<std::string>{"table", "json"}));
  EXPECT_FALSE(Option(get, "--wait").takes_value);
  EXPECT_EQ(Option(get, "--input").kind, ValueKind::kFile);  // "@FILE or - for stdin"
  EXPECT_EQ(Option(get, "--state-dir").kind, ValueKind::kDir);
  EXPECT_TRUE(Option(get, "--set").repeats);
  EXPECT_FALSE(Option(get, "--output").repeats);
  for (const CompletionArg& arg : get.options) EXPECT_NE(arg.names.back(), "--secret");

  const CompletionCommand& validate = spec.commands[1];
  ASSERT_EQ(validate.positionals.size(), 1u);
  EXPECT_TRUE(validate.positionals[0].repeats);
  EXPECT_EQ(validate.positionals[0].kind, ValueKind::kFile);  // named FILE
}

TEST_F(Completion, GlobalOptionsOnlyWhereTheyFallThrough) {
  CompletionSpec spec = DescribeApp(&app_);
  EXPECT_FALSE(spec.commands[0].global_options);
  std::string bash = BashCompletion(spec);
  EXPECT_NE(bash.find("    ' --socket') return 0 ;;\n"), std::string::npos) << bash;
  EXPECT_EQ(bash.find("'get --socket'"), std::string::npos);

  app_.get_subcommand("get")->fallthrough();
  spec = DescribeApp(&app_);
  EXPECT_TRUE(spec.commands[0].global_options);
  bash = BashCompletion(spec);
  EXPECT_NE(bash.find("    'get --socket') return 0 ;;\n"), std::string::npos) << bash;
}

TEST_F(Completion, BashTables) {
  std::string bash = BashCompletion(DescribeApp(&app_));
  EXPECT_NE(bash.find("    '') _chainctl_words 'get validate' ;;\n"), std::string::npos) << bash;
  EXPECT_NE(bash.find("    'get -o'|'get --output') _chainctl_words 'table json' ;;\n"),
            std::string::npos);
  EXPECT_EQ(bash.find("'get --wait') return 0"), std::string::npos);  // a flag takes no value
  EXPECT_NE(bash.find("        0) _chainctl_words 'chain run' ;;\n"), std::string::npos);
  EXPECT_NE(bash.find("'validate')\n      case $2 in\n        *) _chainctl_files ;;\n"),
            std::string::npos);
  EXPECT_NE(bash.find("\ncomplete -F _chainctl chainctl\n"), std::string::npos);
}

TEST_F(Completion, ZshSpecs) {
  std::string zsh = ZshCompletion(DescribeApp(&app_));
  EXPECT_EQ(zsh.rfind("#compdef chainctl\n", 0), 0u);
  EXPECT_NE(zsh.find("'(-o --output)'{-o,--output}'[Output format]:output:(table json)'"),
            std::string::npos)
      << zsh;
  EXPECT_NE(zsh.find("'--socket[chaind'\\''s socket]:socket:_files'"), std::string::npos);
  EXPECT_NE(zsh.find("'--state-dir[A folder]:state-dir:_files -/'"), std::string::npos);
  EXPECT_NE(zsh.find("'*--set[KEY=VALUE]:set: '"), std::string::npos);
  EXPECT_NE(zsh.find("'1:KIND:(chain run)'"), std::string::npos);
  EXPECT_NE(zsh.find("'*:FILE:_files'"), std::string::npos);
  EXPECT_NE(zsh.find("'get:Show a thing'"), std::string::npos);
}

TEST_F(Completion, FishLines) {
  std::string fish = FishCompletion(DescribeApp(&app_));
  EXPECT_NE(fish.find("complete -c chainctl -n '__chainctl_at - 0' -a 'get' -d 'Show a thing'\n"),
            std::string::npos)
      << fish;
  EXPECT_NE(fish.find("complete -c chainctl -n '__chainctl_at get 0' -f -a 'chain run'"),
            std::string::npos);
  EXPECT_NE(fish.find("complete -c chainctl -n '__chainctl_on get' -s o -l output -r -f -a "
                      "'table json' -d 'Output format'\n"),
            std::string::npos);
  EXPECT_NE(fish.find("-n '__chainctl_at validate 0+' -F"), std::string::npos);
  EXPECT_NE(fish.find("-l socket -r -F -d 'chaind\\'s socket'"), std::string::npos);
}

// The real command line: every subcommand `chainctl --help` lists is completed, with the kinds
// of `get`.
TEST(CompletionCommand, CoversEveryCommandOfTheHelp) {
  Result help = RunChainctl({"--help"});
  ASSERT_EQ(help.status, 0);
  Result bash = RunChainctl({"completion", "bash"});
  ASSERT_EQ(bash.status, 0) << bash.err;
  // The subcommands' line of the script: `    '') _chainctl_words 'validate graph ...' ;;`.
  size_t start = bash.out.find("    '') _chainctl_words '");
  ASSERT_NE(start, std::string::npos);
  start += std::string("    '') _chainctl_words '").size();
  std::istringstream words(bash.out.substr(start, bash.out.find('\'', start) - start));
  std::set<std::string> completed{std::istream_iterator<std::string>(words), {}};
  std::istringstream lines(help.out.substr(help.out.find("Subcommands:")));
  std::string line;
  int listed = 0;
  while (std::getline(lines, line)) {
    if (line.size() < 3 || line.rfind("  ", 0) != 0 || line[2] == ' ') continue;
    std::string name = line.substr(2, line.find(' ', 2) - 2);
    EXPECT_TRUE(completed.count(name)) << name << " is not completed";
    ++listed;
  }
  EXPECT_EQ(completed.size(), static_cast<size_t>(listed));
  EXPECT_GE(listed, 20);
  EXPECT_NE(bash.out.find("        0) _chainctl_words 'chain task run' ;;\n"), std::string::npos);
  for (std::string shell : {"zsh", "fish"}) {
    Result script = RunChainctl({"completion", shell});
    EXPECT_EQ(script.status, 0);
    EXPECT_NE(script.out.find("completion"), std::string::npos) << shell;
  }
}

TEST(CompletionCommand, UnknownShellIsUsageError) {
  Result r = RunChainctl({"completion", "tcsh"});
  EXPECT_EQ(r.status, kExitInvalid);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("tcsh"), std::string::npos);
}

TEST(SchemaCommand, PrintsTheSchemaFile) {
  Result r = RunChainctl({"schema"});
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out, chainctl::testing::ReadFileOrDie(
                       chainctl::testing::SourcePath("schemas/chain.schema.json")));
  EXPECT_EQ(nlohmann::json::parse(r.out)["$schema"], "http://json-schema.org/draft-07/schema#");
}

}  // namespace
}  // namespace chainctl::cli
