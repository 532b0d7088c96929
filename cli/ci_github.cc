// GitHub Actions (ci_report.h): workflow commands' escapes, the step's outputs and the job summary.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/ci_report.h"
#include "cli/output.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

// A value of SummaryJson as a table cell: text without the characters that end a cell or a row.
std::string Cell(const json& value) {
  std::string text = value.is_string() ? value.get<std::string>() : value.dump();
  std::string out;
  for (char c : CleanLogText(text)) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n' || c == '\t') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// Appends `text` to the file the variable `name` names, if it is set.
bool AppendTo(const char* name, const std::string& text, std::ostream& err) {
  const char* path = std::getenv(name);
  if (!path || !*path) return true;
  std::ofstream file(path, std::ios::app | std::ios::binary);
  file << text;
  file.flush();
  if (file) return true;
  err << "chainctl: cannot append to " << path << " ($" << name << ")\n";
  return false;
}

}  // namespace

std::string GithubEscapeData(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '%') {
      out += "%25";
    } else if (c == '\r') {
      out += "%0D";
    } else if (c == '\n') {
      out += "%0A";
    } else {
      out += c;
    }
  }
  return out;
}

std::string GithubEscapeProperty(std::string_view text) {
  std::string out;
  for (char c : GithubEscapeData(text)) {
    if (c == ':') {
      out += "%3A";
    } else if (c == ',') {
      out += "%2C";
    } else {
      out += c;
    }
  }
  return out;
}

std::string GithubOutputs(const json& summary) {
  // Ids and states are single-line words: nothing to quote.
  return "run_id=" + summary.value("run_id", "") + "\nstatus=" + summary.value("status", "") + "\n";
}

std::string GithubStepSummary(const json& summary) {
  std::ostringstream md;
  md << "### chainctl: " << Cell(summary.value("chain_id", "")) << " "
     << Cell(summary.value("run_id", "")) << " " << Cell(summary.value("status", "")) << "\n\n"
     << "| task | state | attempts | time | start |\n|---|---|---|---|---|\n";
  for (const json& t : summary.value("tasks", json::array())) {
    const json& seconds = t["duration_s"];
    std::string time = seconds.is_number()
                           ? FormatSeconds(static_cast<int64_t>(seconds.get<double>() * 1000))
                           : "";
    std::string start = t["cold"].is_boolean() ? (t["cold"].get<bool>() ? "cold" : "warm") : "";
    md << "| " << Cell(t.value("task_id", "")) << " | " << Cell(t.value("state", "")) << " | "
       << t.value("attempts", 0) << " | " << time << " | " << start << " |\n";
  }
  if (summary.contains("error") && summary["error"].is_string()) {
    md << "\n" << Cell(summary["error"]) << "\n";
  }
  return md.str() + "\n";
}

bool WriteGithubStepFiles(const json& summary, std::ostream& err) {
  bool outputs = AppendTo("GITHUB_OUTPUT", GithubOutputs(summary), err);
  return AppendTo("GITHUB_STEP_SUMMARY", GithubStepSummary(summary), err) && outputs;
}

}  // namespace chainctl::cli
