// chainctl apply, get, list, delete: the chain and task registry of chaind.
#include <unistd.h>

#include <ostream>

#include "cli/api_call.h"
#include "cli/app.h"
#include "cli/output.h"
#include "common/chain/dag.h"
#include "common/chain/graph_render.h"
#include "common/chain/load.h"

namespace chainctl::cli {
namespace {

std::string UsedBy(const nlohmann::json& used_by) {
  std::string out;
  for (const auto& u : used_by) {
    if (!out.empty()) out += ", ";
    out += u.value("chain_id", "?") + "@" + std::to_string(u.value("version", 0));
  }
  return out;
}

void PrintChainTable(const nlohmann::json& chain, std::ostream& out) {
  out << "chain " << chain.value("chain_id", "") << ", version " << chain.value("version", 0)
      << " of " << chain["versions"].size() << ", stored "
      << FormatTime(chain.value("created_unix_ms", int64_t{0})) << " UTC\n";
  Diagnostics diags;
  LoadOptions load;
  load.check_executables = false;
  auto parsed = ParseChain(chain["definition"].dump(), "definition.json", load, &diags);
  Dag dag;
  std::string err;
  if (parsed && BuildDag(*parsed, &dag, &err)) {
    out << RenderGraph(*parsed, dag, chain.value("chain_id", ""), GraphFormat::kText);
  }
}

}  // namespace

int RunApply(const ApplyOptions& options, std::ostream& out, std::ostream& err) {
  std::optional<Chain> chain = LoadOrReport(options.file, err);
  if (!chain) return kExitInvalid;
  // Executable paths are absolute now: the daemon does not know this folder.
  nlohmann::json body;
  if (int status = ApplyChain(options.daemon, *chain, &body, err); status != kExitOk) {
    return status;
  }
  OutputFormat format = ParseOutputFormat(options.output, isatty(1));
  if (format != OutputFormat::kTable) {
    PrintData(out, body, format);
  } else {
    out << "chain " << body.value("chain_id", "") << " version " << body.value("version", 0)
        << (body.value("created", false) ? " stored\n" : " unchanged\n");
  }
  return kExitOk;
}

int RunGet(const GetOptions& options, std::ostream& out, std::ostream& err) {
  std::string target = (options.kind == "chain" ? "/chains/" : "/tasks/") + options.id;
  if (options.kind == "chain" && options.version > 0) {
    target += "?version=" + std::to_string(options.version);
  }
  nlohmann::json body;
  int status = Fetch(options.daemon, target, options.output, out, err, &body);
  if (status != kExitOk || body.is_null()) return status;
  if (options.kind == "chain") {
    PrintChainTable(body, out);
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& v : body["versions"]) {
      rows.push_back({v.value("content_hash", "").substr(0, 12),
                      FormatTime(v.value("created_unix_ms", int64_t{0})), UsedBy(v["used_by"])});
    }
    out << "task " << body.value("task_id", "") << "\n";
    PrintTable(out, {"version", "stored (UTC)", "used by"}, rows);
  }
  return kExitOk;
}

int RunList(const ListOptions& options, std::ostream& out, std::ostream& err) {
  nlohmann::json body;
  std::string target = options.kind == "chains" ? "/chains" : "/tasks";
  int status = Fetch(options.daemon, target, options.output, out, err, &body);
  if (status != kExitOk || body.is_null()) return status;
  std::vector<std::vector<std::string>> rows;
  if (options.kind == "chains") {
    for (const auto& c : body["chains"]) {
      rows.push_back({c.value("chain_id", ""), std::to_string(c.value("version", 0)),
                      std::to_string(c.value("tasks", 0)),
                      FormatTime(c.value("created_unix_ms", int64_t{0}))});
    }
    PrintTable(out, {"chain", "version", "tasks", "stored (UTC)"}, rows);
  } else {
    for (const auto& t : body["tasks"]) {
      rows.push_back(
          {t.value("task_id", ""), std::to_string(t.value("versions", 0)), UsedBy(t["used_by"])});
    }
    PrintTable(out, {"task", "versions", "used by"}, rows);
  }
  return kExitOk;
}

int RunDelete(const GetOptions& options, std::ostream& out, std::ostream& err) {
  HttpClientResponse response;
  if (int status =
          Call(options.daemon, {"DELETE", "/chains/" + options.id, "", ""}, &response, err);
      status != kExitOk) {
    return status;
  }
  out << "chain " << options.id << " deleted\n";
  return kExitOk;
}

}  // namespace chainctl::cli
