// What a finished run is reported as for CI (DESIGN.md §7 "CI output"): the --junit and
// --summary files, and under GITHUB_ACTIONS=true (or GITLAB_CI=true) each task's log in a
// group (section) and each failure as an annotation at its definition in the chain file.
//
// ReportRun does the I/O (chaind, files); everything else here is pure: it takes the run as
// chaind gave it (RunFacts) and returns text, so that tests can feed it hostile bytes.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "cli/daemon_client.h"
#include "common/diagnostic.h"

namespace chainctl::cli {

struct RunReportOptions {
  std::string junit_file;    // "": none
  std::string summary_file;  // "": none
  std::string chain_file;    // run -f: the chain file, for annotations' positions; "": none
};

// Called once `run_id` has ended, whatever its status; asks chaind what it needs (the run, its
// history records, the failed and, under CI, every started task's log tail) and writes the
// files and the CI output (on `err`: stdout stays the run's output). Does nothing, and asks
// nothing, when there is neither a file to write nor a CI to write for. Returns false, having
// said why on `err`, if chaind cannot be asked or a file cannot be written; what could be done
// is done.
bool ReportRun(const DaemonOptions& daemon, const std::string& run_id,
               const RunReportOptions& options, std::ostream& err);

// Every history record of `run_id` (GET /history?run=, page after page), oldest first, into
// the array *records; false with *why if chaind does not answer them. Also for `trace`.
bool GetRunRecords(const DaemonOptions& daemon, const std::string& run_id, nlohmann::json* records,
                   std::string* why);

// The CI chainctl writes for, from the environment: GITHUB_ACTIONS=true wins over
// GITLAB_CI=true; kNone otherwise.
enum class CiKind { kNone, kGithub, kGitlab };
CiKind DetectCi();

// --- Pure parts, for ReportRun and the tests. ---

// What ReportRun gathered about a run.
struct RunFacts {
  nlohmann::json run;      // GET /runs/{id}: {run_id, chain_id, status, created_unix_ms,
                           // ended_unix_ms?, error?, tasks: [{task_id, state, attempts,
                           // started_unix_ms?, ended_unix_ms?, error?, cached?,
                           // cache?: {hit, key, reason}}]}
  nlohmann::json records;  // GET /history?run=: its attempts' records, oldest first (array)
  std::map<std::string, std::string> logs;  // task_id -> the tail of its log (any bytes)
  std::map<std::string, int> lines;         // task_id -> line of its definition in the file
  std::string chain_file;                   // for annotations; "": none
};

// `bytes` as XML 1.0 character data: & < > " ' escaped; carriage return as &#13; and, in an
// `attribute`, tab and newline as &#9; and &#10; too (so that attribute-value normalisation
// keeps them); every byte that is not part of well-formed UTF-8, and every character XML 1.0
// forbids (the C0 controls but tab, newline and carriage return; U+FFFE, U+FFFF), as U+FFFD.
std::string XmlEscape(std::string_view bytes, bool attribute = true);

// `bytes` as text for a CI log: well-formed UTF-8 with bad bytes as U+FFFD; NUL, CR and the
// other C0 controls but tab, newline and ESC (colours) dropped.
std::string CleanLogText(std::string_view bytes);

// A workflow command's message (GitHub's escapeData): % CR LF as %25 %0D %0A.
std::string GithubEscapeData(std::string_view text);
// A workflow command's property value (escapeProperty): also : and , as %3A and %2C.
std::string GithubEscapeProperty(std::string_view text);

// `::error file=F,line=L,col=C,title=T::MESSAGE`, leaving out what is empty or 0.
std::string GithubError(const std::string& file, int line, int column, const std::string& title,
                        const std::string& message);

// A diagnostic as a GitHub error annotation at its place (validate, LoadOrReport).
std::string GithubDiagnostic(const Diagnostic& d);

// JUnit XML of the run: <testsuites> holding one <testsuite> (name: chain id) with one
// <testcase classname=CHAIN name=TASK time=SECONDS> per task in chain order; a failed task
// has <failure message=ERROR type=STATE> holding its log tail; a cached task passes, with
// <system-out>cached (key KEY)</system-out>; a skipped, cancelled, upstream_failed or
// never-ended task has <skipped message=STATE/>.
std::string JunitXml(const RunFacts& facts);

// The --summary document (version 1): {summary_version, run_id, chain_id, chain_version,
// status, error?, started_unix_ms, ended_unix_ms, duration_s, tasks: [{task_id, state,
// attempts, started_unix_ms, ended_unix_ms, duration_s, cold, startup_ms, cached, cache,
// error}]}; a time or measurement that is not known is null; cold and startup_ms are the last
// attempt's; cache is the task's {hit, key, reason} when its caching is on, else null.
nlohmann::json SummaryJson(const RunFacts& facts);

// The CI log of the run for `ci` (not kNone): each task that started in a group/section named
// "TASK (state, 1.2s)" holding its cleaned log tail, then each failed task as an error
// annotation (GitHub) or error line (GitLab) at facts.lines[task] in facts.chain_file.
// `token` ends GitHub's ::stop-commands:: around each log (a log cannot issue commands);
// `now_unix_s` stamps GitLab's sections.
std::string CiLog(const RunFacts& facts, CiKind ci, const std::string& token, int64_t now_unix_s);

// GitHub's step files (ci_github.cc), from SummaryJson's `summary`: "run_id=RUN" and
// "status=STATUS" lines for the step's outputs (`steps.ID.outputs.run_id`), and a Markdown
// table of the tasks for the job's summary page. The text of each; WriteGithubStepFiles appends
// them to the files $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY name, where set (false, said on
// `err`, if one cannot be written).
std::string GithubOutputs(const nlohmann::json& summary);
std::string GithubStepSummary(const nlohmann::json& summary);
bool WriteGithubStepFiles(const nlohmann::json& summary, std::ostream& err);

// Task id -> line of its `task_id` in the chain file `text` (YAML or JSON); empty if it does
// not parse.
std::map<std::string, int> TaskLines(std::string_view text, const std::string& file_name);

}  // namespace chainctl::cli
