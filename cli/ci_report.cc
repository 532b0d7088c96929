#include "cli/ci_report.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <vector>

#include "cli/output.h"
#include "common/json_text.h"
#include "common/read_file.h"
#include "common/source_doc.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
// A log tail as CI output shows it: at most this many lines and bytes of a task's log.
constexpr int kLogTailLines = 100;
constexpr size_t kLogTailBytes = 64 << 10;

// `bytes` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD.
std::string ValidUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  while (!bytes.empty()) {
    std::optional<size_t> bad = FindInvalidUtf8(bytes);
    if (!bad) {
      out += bytes;
      break;
    }
    out += bytes.substr(0, *bad);
    out += kReplacement;
    bytes.remove_prefix(*bad + 1);
  }
  return out;
}

// Seconds with millisecond precision, as JUnit's time attributes and the summary write them.
std::string Seconds(int64_t ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", static_cast<double>(ms) / 1000);
  return text;
}

// A task's (or the run's) duration from its *_unix_ms fields; nullopt if either is missing.
std::optional<int64_t> DurationMs(const json& j, const char* start, const char* end) {
  if (!j.contains(start) || !j.contains(end) || !j[start].is_number() || !j[end].is_number()) {
    return std::nullopt;
  }
  return std::max<int64_t>(0, j[end].get<int64_t>() - j[start].get<int64_t>());
}

std::optional<int64_t> TaskDurationMs(const json& task) {
  return DurationMs(task, "started_unix_ms", "ended_unix_ms");
}

// ISO 8601 in UTC without a zone ("2024-05-01T12:00:00"), as Ant's JUnit timestamp.
std::string IsoTime(int64_t unix_ms) { return FormatUtc(unix_ms, TimeStyle::kIso8601); }

// The newest record (highest attempt) of each task.
std::map<std::string, json> LastRecords(const json& records) {
  std::map<std::string, json> last;
  if (!records.is_array()) return last;
  for (const json& r : records) {
    std::string task = r.value("task_id", "");
    auto it = last.find(task);
    if (it == last.end() || it->second.value("attempt", 0) <= r.value("attempt", 0)) {
      last[task] = r;
    }
  }
  return last;
}

const json& Tasks(const RunFacts& facts) {
  static const json kNone = json::array();
  const json& tasks = facts.run.contains("tasks") ? facts.run["tasks"] : kNone;
  return tasks.is_array() ? tasks : kNone;
}

// "TASK (state, 1.234s)"; the time only for a task that ran.
std::string TaskHeader(const json& task) {
  std::string header = task.value("task_id", "") + " (" + task.value("state", "");
  if (std::optional<int64_t> ms = TaskDurationMs(task)) header += ", " + Seconds(*ms) + "s";
  return header + ")";
}

std::string FailureMessage(const json& task) {
  std::string error = task.value("error", "");
  return "task " + task.value("task_id", "") + " failed" + (error.empty() ? "" : ": " + error);
}

}  // namespace

CiKind DetectCi() {
  auto is_true = [](const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr && std::strcmp(value, "true") == 0;
  };
  if (is_true("GITHUB_ACTIONS")) return CiKind::kGithub;
  if (is_true("GITLAB_CI")) return CiKind::kGitlab;
  return CiKind::kNone;
}

std::string XmlEscape(std::string_view bytes, bool attribute) {
  std::string valid = ValidUtf8(bytes);
  std::string out;
  out.reserve(valid.size());
  for (size_t i = 0; i < valid.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(valid[i]);
    switch (c) {
      case '&':
        out += "&amp;";
        continue;
      case '<':
        out += "&lt;";
        continue;
      case '>':
        out += "&gt;";
        continue;
      case '"':
        out += "&quot;";
        continue;
      case '\'':
        out += "&apos;";
        continue;
      case '\r':
        out += "&#13;";
        continue;
      case '\t':
        out += attribute ? "&#9;" : "\t";
        continue;
      case '\n':
        out += attribute ? "&#10;" : "\n";
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      out += kReplacement;
    } else if (c == 0xEF && i + 2 < valid.size() && valid[i + 1] == '\xBF' &&
               (valid[i + 2] == '\xBE' || valid[i + 2] == '\xBF')) {
      out += kReplacement;  // U+FFFE, U+FFFF
      i += 2;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string CleanLogText(std::string_view bytes) {
  std::string valid = ValidUtf8(bytes);
  std::string out;
  out.reserve(valid.size());
  for (char c : valid) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 || c == '\t' || c == '\n' || c == '\x1b') out += c;
  }
  return out;
}

std::string GithubError(const std::string& file, int line, int column, const std::string& title,
                        const std::string& message) {
  std::vector<std::string> properties;
  if (!file.empty()) {
    properties.push_back("file=" + GithubEscapeProperty(ValidUtf8(file)));
    if (line > 0) properties.push_back("line=" + std::to_string(line));
    if (line > 0 && column > 0) properties.push_back("col=" + std::to_string(column));
  }
  if (!title.empty()) properties.push_back("title=" + GithubEscapeProperty(ValidUtf8(title)));
  std::string command = "::error";
  for (size_t i = 0; i < properties.size(); ++i) {
    command += (i == 0 ? " " : ",") + properties[i];
  }
  return command + "::" + GithubEscapeData(ValidUtf8(message));
}

std::string GithubDiagnostic(const Diagnostic& d) {
  std::string message = d.path.empty() ? d.message : d.path + ": " + d.message;
  return GithubError(d.file == "-" ? "" : d.file, d.pos.line, d.pos.column, "", message);
}

std::string JunitXml(const RunFacts& facts) {
  const json& run = facts.run;
  int failures = 0, skipped = 0;
  std::string cases;
  std::string chain = XmlEscape(run.value("chain_id", ""));
  for (const json& task : Tasks(facts)) {
    std::string state = task.value("state", "");
    cases += "    <testcase classname=\"" + chain + "\" name=\"" +
             XmlEscape(task.value("task_id", "")) + "\" time=\"" +
             Seconds(TaskDurationMs(task).value_or(0)) + "\"";
    if (state == "succeeded") {
      cases += "/>\n";
      continue;
    }
    if (state == "cached") {  // passed: its result restored from the task cache
      const json& cache = task.contains("cache") ? task["cache"] : json::object();
      std::string key = cache.is_object() ? cache.value("key", "") : "";
      cases += ">\n      <system-out>" +
               XmlEscape("cached" + (key.empty() ? "" : " (key " + key + ")"), false) +
               "</system-out>\n    </testcase>\n";
      continue;
    }
    if (state == "failed") {
      ++failures;
      auto log = facts.logs.find(task.value("task_id", ""));
      cases += ">\n      <failure message=\"" + XmlEscape(task.value("error", "failed")) +
               "\" type=\"failed\">" +
               XmlEscape(log == facts.logs.end() ? "" : log->second, false) + "</failure>\n";
    } else {
      ++skipped;
      cases += ">\n      <skipped message=\"" + XmlEscape(state) + "\"/>\n";
    }
    cases += "    </testcase>\n";
  }
  size_t tests = Tasks(facts).size();
  std::string time = Seconds(DurationMs(run, "created_unix_ms", "ended_unix_ms").value_or(0));
  std::string counts = " tests=\"" + std::to_string(tests) + "\" failures=\"" +
                       std::to_string(failures) + "\" errors=\"0\"";
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  xml += "<testsuites name=\"chainctl\"" + counts + " time=\"" + time + "\">\n";
  xml += "  <testsuite name=\"" + chain + "\"" + counts + " skipped=\"" + std::to_string(skipped) +
         "\" time=\"" + time + "\" timestamp=\"" +
         IsoTime(run.value("created_unix_ms", int64_t{0})) + "\">\n";
  xml += "    <properties>\n";
  for (const char* key : {"run_id", "status", "error"}) {
    if (!run.contains(key) || !run[key].is_string()) continue;
    xml += "      <property name=\"" + std::string(key) + "\" value=\"" +
           XmlEscape(run[key].get<std::string>()) + "\"/>\n";
  }
  xml += "    </properties>\n" + cases + "  </testsuite>\n</testsuites>\n";
  return xml;
}

json SummaryJson(const RunFacts& facts) {
  const json& run = facts.run;
  auto number_or_null = [](const json& j, const char* key) {
    return j.contains(key) && j[key].is_number() ? j[key] : json(nullptr);
  };
  auto seconds = [](std::optional<int64_t> ms) {
    return ms ? json(static_cast<double>(*ms) / 1000) : json(nullptr);
  };
  json summary = {{"summary_version", 1},
                  {"run_id", run.value("run_id", "")},
                  {"chain_id", run.value("chain_id", "")},
                  {"chain_version", number_or_null(run, "chain_version")},
                  {"status", run.value("status", "")},
                  {"error", run.contains("error") ? run["error"] : json(nullptr)},
                  {"started_unix_ms", number_or_null(run, "created_unix_ms")},
                  {"ended_unix_ms", number_or_null(run, "ended_unix_ms")},
                  {"duration_s", seconds(DurationMs(run, "created_unix_ms", "ended_unix_ms"))}};
  std::map<std::string, json> last = LastRecords(facts.records);
  json tasks = json::array();
  for (const json& task : Tasks(facts)) {
    std::string id = task.value("task_id", "");
    const json& record = last.count(id) ? last[id] : json::object();
    tasks.push_back({{"task_id", id},
                     {"state", task.value("state", "")},
                     {"attempts", task.value("attempts", 0)},
                     {"started_unix_ms", number_or_null(task, "started_unix_ms")},
                     {"ended_unix_ms", number_or_null(task, "ended_unix_ms")},
                     {"duration_s", seconds(TaskDurationMs(task))},
                     {"cold", record.contains("cold") ? record["cold"] : json(nullptr)},
                     {"startup_ms", number_or_null(record, "startup_ms")},
                     {"cached", task.value("cached", false) || task.value("state", "") == "cached"},
                     {"cache", task.contains("cache") ? task["cache"] : json(nullptr)},
                     {"error", task.contains("error") ? task["error"] : json(nullptr)}});
  }
  summary["tasks"] = std::move(tasks);
  return summary;
}

std::string CiLog(const RunFacts& facts, CiKind ci, const std::string& token, int64_t now_unix_s) {
  std::string out;
  std::string stamp = std::to_string(now_unix_s);
  for (const json& task : Tasks(facts)) {
    std::string id = task.value("task_id", "");
    auto log = facts.logs.find(id);
    std::string body = log == facts.logs.end() ? "" : CleanLogText(log->second);
    if (!body.empty() && body.back() != '\n') body += "\n";
    if (ci == CiKind::kGithub) {
      out += "::group::" + GithubEscapeData(ValidUtf8(TaskHeader(task))) + "\n";
      out += "::stop-commands::" + token + "\n" + body + "::" + token + "::\n::endgroup::\n";
    } else {
      std::string section = "chainctl_task_" + id;  // ids are [A-Za-z0-9_.-]: a valid name
      bool failed = task.value("state", "") == "failed";
      out += "\x1b[0Ksection_start:" + stamp + ":" + section +
             (failed ? "[collapsed=false]" : "[collapsed=true]") + "\r\x1b[0K" +
             CleanLogText(TaskHeader(task)) + "\n" + body;
      out += "\x1b[0Ksection_end:" + stamp + ":" + section + "\r\x1b[0K\n";
    }
  }
  for (const json& task : Tasks(facts)) {
    if (task.value("state", "") != "failed") continue;
    auto line = facts.lines.find(task.value("task_id", ""));
    int n = line == facts.lines.end() ? 0 : line->second;
    if (ci == CiKind::kGithub) {
      out += GithubError(facts.chain_file, n, 0, "task " + task.value("task_id", "") + " failed",
                         FailureMessage(task)) +
             "\n";
    } else {
      std::string where = facts.chain_file.empty() ? ""
                          : n > 0 ? facts.chain_file + ":" + std::to_string(n) + ": "
                                  : facts.chain_file + ": ";
      out += CleanLogText("ERROR: " + where + FailureMessage(task)) + "\n";
    }
  }
  return out;
}

std::map<std::string, int> TaskLines(std::string_view text, const std::string& file_name) {
  std::map<std::string, int> lines;
  SourceDoc doc;
  doc.file = file_name;
  Diagnostics diags;
  if (!ParseSourceDoc(text, DetectFormat(file_name, text), ParseLimits{}, &doc, &diags)) {
    return lines;
  }
  if (!doc.root.is_object() || !doc.root.contains("tasks") || !doc.root["tasks"].is_array()) {
    return lines;
  }
  const json& tasks = doc.root["tasks"];
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (!tasks[i].is_object() || !tasks[i].contains("task_id")) continue;
    if (!tasks[i]["task_id"].is_string()) continue;
    SourcePos pos = doc.KeyPos("/tasks/" + std::to_string(i) + "/task_id");
    if (pos.line > 0) lines[tasks[i]["task_id"].get<std::string>()] = pos.line;
  }
  return lines;
}

namespace {

// GET `target`, a JSON answer in *body; false with *why otherwise.
bool GetJson(const DaemonOptions& daemon, const std::string& target, json* body, std::string* why) {
  HttpClientResponse response;
  if (!CallDaemon(daemon, {"GET", target, "", ""}, &response, why)) return false;
  if (response.status != 200) {
    *why = "GET " + target + ": " + ApiErrorMessage(response);
    return false;
  }
  *body = json::parse(response.body, nullptr, false);
  if (body->is_discarded()) *why = "GET " + target + ": the answer is not JSON";
  return !body->is_discarded();
}

}  // namespace

bool GetRunRecords(const DaemonOptions& daemon, const std::string& run_id, json* records,
                   std::string* why) {
  *records = json::array();
  std::string after = "0";
  for (;;) {
    json page;
    if (!GetJson(daemon, "/history?run=" + run_id + "&order=oldest&limit=10000&after=" + after,
                 &page, why)) {
      return false;
    }
    if (!page.is_object() || !page.contains("records") || !page["records"].is_array()) {
      *why = "GET /history: no records in the answer";
      return false;
    }
    for (json& record : page["records"]) records->push_back(std::move(record));
    if (!page.contains("next") || !page["next"].is_number()) return true;
    after = std::to_string(page["next"].get<uint64_t>());
  }
}

namespace {

// The end of a task's (last attempt's) log: kLogTailLines lines, at most kLogTailBytes from a
// line's start; "" if there is none.
std::string LogTail(const DaemonOptions& daemon, const std::string& run_id,
                    const std::string& task) {
  HttpClientResponse response;
  std::string why;
  std::string target =
      "/runs/" + run_id + "/tasks/" + task + "/log?tail=" + std::to_string(kLogTailLines);
  if (!CallDaemon(daemon, {"GET", target, "", ""}, &response, &why) || response.status != 200) {
    return "";
  }
  std::string text = std::move(response.body);
  if (text.size() > kLogTailBytes) {
    size_t from = text.find('\n', text.size() - kLogTailBytes);
    text =
        "[...]\n" + text.substr(from == std::string::npos ? text.size() - kLogTailBytes : from + 1);
  }
  return text;
}

bool WriteFile(const std::string& path, const std::string& text, std::ostream& err) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (file) file << text;
  if (file) file.close();
  if (!file) {
    err << "chainctl: cannot write " << path << ": " << std::strerror(errno) << "\n";
    return false;
  }
  return true;
}

// A token no log line can guess, to end ::stop-commands:: with.
std::string RandomToken() {
  std::random_device random;
  char text[40];
  std::snprintf(text, sizeof text, "chainctl-%08x%08x", random(), random());
  return text;
}

// The chain file's task lines, for annotations; empty if it cannot be read.
std::map<std::string, int> ChainFileLines(const std::string& file) {
  std::string text;
  if (file.empty() || file == "-" || ReadFileBytes(file, &text, ParseLimits{}.max_bytes) != 0) {
    return {};
  }
  return TaskLines(text, file);
}

}  // namespace

bool ReportRun(const DaemonOptions& daemon, const std::string& run_id,
               const RunReportOptions& options, std::ostream& err) {
  CiKind ci = DetectCi();
  if (ci == CiKind::kNone && options.junit_file.empty() && options.summary_file.empty()) {
    return true;
  }
  RunFacts facts;
  std::string why;
  if (!GetJson(daemon, "/runs/" + run_id, &facts.run, &why)) {
    err << "chainctl: cannot report " << run_id << ": " << why << "\n";
    return false;
  }
  bool ok = GetRunRecords(daemon, run_id, &facts.records, &why);
  if (!ok) err << "chainctl: " << run_id << "'s report lacks start-up figures: " << why << "\n";
  for (const json& task : Tasks(facts)) {
    std::string id = task.value("task_id", "");
    bool started = task.value("attempts", 0) > 0;
    if (started && (ci != CiKind::kNone || task.value("state", "") == "failed")) {
      facts.logs[id] = LogTail(daemon, run_id, id);
    }
  }
  if (ci != CiKind::kNone) {
    facts.lines = ChainFileLines(options.chain_file);
    if (options.chain_file != "-") facts.chain_file = options.chain_file;
    err << CiLog(facts, ci, RandomToken(), static_cast<int64_t>(std::time(nullptr)));
    if (ci == CiKind::kGithub) ok = WriteGithubStepFiles(SummaryJson(facts), err) && ok;
  }
  if (!options.junit_file.empty()) ok = WriteFile(options.junit_file, JunitXml(facts), err) && ok;
  if (!options.summary_file.empty()) {
    std::string text =
        SummaryJson(facts).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    ok = WriteFile(options.summary_file, text, err) && ok;
  }
  return ok;
}

}  // namespace chainctl::cli
