// For the tests of chainctl's command line (cli_test.cc, completion_test.cc): RunCli in
// process, its exit status and what it printed.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "cli/app.h"

namespace chainctl::cli {

struct Result {
  int status;
  std::string out;
  std::string err;
};

// chainctl `args` (without the program name).
inline Result RunChainctl(std::vector<std::string> args) {
  args.insert(args.begin(), "chainctl");
  std::ostringstream out, err;
  int status = RunCli(args, out, err);
  return {status, out.str(), err.str()};
}

}  // namespace chainctl::cli
