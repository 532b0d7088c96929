// chainctl prefetch status and chainctl stats (DESIGN.md §5 "Measured", §7): GET /prefetch and
// GET /stats as tables, or as they come with -o json|yaml.
#include <cstdio>
#include <ostream>

#include "cli/api_call.h"
#include "cli/app.h"
#include "cli/output.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

std::string Number(const json& v, int digits = 0) {
  if (!v.is_number()) return "-";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, v.get<double>());
  return text;
}

std::string Mib(const json& bytes) {
  return bytes.is_number() ? Number(json(bytes.get<double>() / (1 << 20)), 1) + " MiB" : "-";
}

// The figures both commands show: hits, misses, waste, saved, warm pool against the budgets.
void AddTotals(const json& p, std::vector<std::vector<std::string>>* rows) {
  const json& w = p.value("wasted", json::object());
  rows->push_back({"prefetching", p.value("enabled", false) ? "on" : "off (--no-prefetch)"});
  rows->push_back({"hits / misses", Number(p["hits"]) + " / " + Number(p["misses"])});
  rows->push_back({"hit rate", Number(p["hit_rate"], 3)});
  rows->push_back(
      {"start-up saved", Number(json(p.value("startup_saved_ms", 0.0) / 1000), 2) + " s"});
  rows->push_back({"prewarms", Number(p["prewarms"])});
  rows->push_back({"wasted", Number(w["prewarms"]) + " (" + Number(w["cpu_seconds"], 2) +
                                 " CPU-s, " + Number(w["mb_seconds"], 1) + " MB-s)"});
  const json& warm = p.value("warm", json::object());
  const json& budgets = p.value("budgets", json::object());
  rows->push_back(
      {"warm processes", Number(warm["processes"]) + " of " + Number(budgets["processes"])});
  rows->push_back(
      {"warm memory", Mib(warm["memory_bytes"]) + " of " + Mib(budgets["memory_bytes"])});
  rows->push_back({"staged", Mib(warm["staged_bytes"]) + " of " + Mib(budgets["staged_bytes"])});
}

// A warm entry's state: a process ready or starting, inputs staged or staging, else an idle
// worker.
std::string PoolState(const json& e) {
  if (e.contains("ready")) return e["ready"].get<bool>() ? "ready" : "starting";
  if (e.contains("staging")) return e["staging"].get<bool>() ? "staging" : "staged";
  return "idle";
}

// A table after a blank line, if it has rows.
void PrintSection(std::ostream& out, const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  out << "\n";
  PrintTable(out, header, rows);
}

}  // namespace

int RunPrefetchStatus(const SimpleOptions& options, std::ostream& out, std::ostream& err) {
  json body;
  if (int status = Fetch(options.daemon, "/prefetch", options.output, out, err, &body);
      status != kExitOk || body.is_null()) {
    return status;
  }
  std::vector<std::vector<std::string>> rows;
  AddTotals(body, &rows);
  rows.push_back({"queue", std::to_string(body.value("queue", json::array()).size())});
  PrintTable(out, {"prefetch", ""}, rows);
  rows.clear();
  for (const json& e : body.value("pool", json::array())) {
    rows.push_back({e.value("chain_id", ""), e.value("task_id", ""), e.value("level", ""),
                    PoolState(e), FormatSeconds(e.value("age_ms", int64_t{0})),
                    FormatSeconds(e.value("expires_in_ms", int64_t{0}))});
  }
  PrintSection(out, {"chain", "task", "level", "state", "age", "expires in"}, rows);
  rows.clear();
  for (const json& t : body.value("tasks", json::array())) {
    rows.push_back({t.value("chain_id", ""), t.value("task_id", ""), t.value("level", ""),
                    Number(t["hits"]), Number(t["misses"]), Number(t["wasted"]),
                    t.contains("startup_ms") ? Number(t["startup_ms"]) + " ms" : "-",
                    FormatSeconds(t.value("keep_alive_ms", int64_t{0}))});
  }
  PrintSection(
      out, {"chain", "task", "level", "hits", "misses", "wasted", "start-up", "keep-alive"}, rows);
  return kExitOk;
}

int RunStats(const SimpleOptions& options, std::ostream& out, std::ostream& err) {
  json body;
  if (int status = Fetch(options.daemon, "/stats", options.output, out, err, &body);
      status != kExitOk || body.is_null()) {
    return status;
  }
  std::vector<std::vector<std::string>> rows;
  const json& d = body.value("daemon", json::object());
  rows.push_back({"uptime", FormatSeconds(body.value("uptime_s", int64_t{0}) * 1000)});
  rows.push_back({"chaind CPU", Number(d["cpu_seconds"], 2) + " s"});
  rows.push_back(
      {"chaind memory", Mib(d["rss_bytes"]) + " (peak " + Mib(d["max_rss_bytes"]) + ")"});
  const json& r = body.value("runs", json::object());
  rows.push_back({"runs active", Number(r["active"])});
  rows.push_back({"tasks running", Number(r["running_tasks"])});
  const json& m = body.value("model", json::object());
  rows.push_back({"model", "version " + Number(m["version"]) + ", " + Number(m["observations"]) +
                               " starts learned"});
  AddTotals(body.value("prefetch", json::object()), &rows);
  PrintTable(out, {"chaind", ""}, rows);
  return kExitOk;
}

}  // namespace chainctl::cli
