// Calling chaind's API from a command: the answer, or a message on stderr and the exit
// status of DESIGN.md §7.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "cli/daemon_client.h"
#include "common/chain/chain.h"

namespace chainctl::cli {

// Calls the daemon. Returns kExitOk with a 2xx answer in *response, else prints why to `err`
// (with the error's details, one per line) and returns the exit status of DESIGN.md §7: 2
// for a request the daemon found invalid (400, 413, 415, 422), 4 for 404 (no such chain, run
// or task), 3 otherwise.
int Call(const DaemonOptions& daemon, const HttpClientRequest& request,
         HttpClientResponse* response, std::ostream& err);

// GETs `target`. In JSON or YAML output, prints the answer and leaves *body null; for a
// table, leaves the printing to the caller with the answer in *body.
int Fetch(const DaemonOptions& daemon, const std::string& target, const std::string& output,
          std::ostream& out, std::ostream& err, nlohmann::json* body);

// POST /chains: stores `chain` (executable paths already absolute). The answer
// ({chain_id, version, created}) in *answer.
int ApplyChain(const DaemonOptions& daemon, const Chain& chain, nlohmann::json* answer,
               std::ostream& err);

}  // namespace chainctl::cli
