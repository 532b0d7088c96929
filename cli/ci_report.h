// What a finished run is reported as for CI (DESIGN.md §7 "CI output"): the --junit and
// --summary files, and under GITHUB_ACTIONS=true (or GITLAB_CI=true) each task's log in a
// group (section) and each failure as an annotation at its definition in the chain file.
#pragma once

#include <ostream>
#include <string>

#include "cli/daemon_client.h"

namespace chainctl::cli {

struct RunReportOptions {
  std::string junit_file;    // "": none
  std::string summary_file;  // "": none
  std::string chain_file;    // run -f: the chain file, for annotations' positions; "": none
};

// Called once `run_id` has ended, whatever its status; asks chaind what it needs. Returns false,
// having said why on `err`, if a file cannot be written.
bool ReportRun(const DaemonOptions& daemon, const std::string& run_id,
               const RunReportOptions& options, std::ostream& err);

}  // namespace chainctl::cli
