// chainctl model evaluate|train|status and chainctl predict (DESIGN.md §5, §7).
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ostream>

#include "cli/api_call.h"
#include "cli/app.h"
#include "cli/output.h"
#include "common/predict/history_file.h"
#include "common/predict/model_eval.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

std::string Fixed(double v, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

// "1.5s" for a number of milliseconds, "-" for none.
std::string Millis(const json& ms) {
  return ms.is_number() ? FormatSeconds(static_cast<int64_t>(ms.get<double>())) : "-";
}

// Percent-encodes all but unreserved characters (RFC 3986) for a query value.
std::string UrlEncode(const std::string& text) {
  std::string out;
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// --set KEY=VALUE... over the default parameters.
bool ParamsOf(const std::vector<std::string>& settings, PredictorParams* params,
              std::ostream& err) {
  json j = PredictorParams{}.ToJson();
  for (const std::string& s : settings) {
    size_t eq = s.find('=');
    json value = eq == std::string::npos ? json() : json::parse(s.substr(eq + 1), nullptr, false);
    if (eq == std::string::npos || !j.contains(s.substr(0, eq)) || !value.is_number()) {
      err << "chainctl: --set " << s << ": expected KEY=NUMBER with KEY one of";
      for (const auto& [key, unused] : j.items()) err << " " << key;
      err << "\n";
      return false;
    }
    j[s.substr(0, eq)] = value;
  }
  std::string why;
  if (!PredictorParams::FromJson(j, params, &why)) {
    err << "chainctl: --set: " << why << "\n";
    return false;
  }
  return true;
}

int Evaluate(const ModelOptions& options, std::ostream& out, std::ostream& err) {
  PredictorParams params;
  if (!ParamsOf(options.settings, &params, err)) return kExitInvalid;
  std::vector<HistoryRecord> records;
  std::string why;
  if (!LoadHistoryFile(options.history_file, &records, &why)) {
    err << "chainctl: " << why << "\n";
    return kExitInvalid;
  }
  EvalReport report = EvaluateModel(&records, params, options.chain);
  if (report.records == 0) {
    err << "chainctl: " << options.history_file << " has no records"
        << (options.chain.empty() ? "" : " of chain " + options.chain) << "\n";
    return kExitInvalid;
  }
  OutputFormat format = ParseOutputFormat(options.output, isatty(STDOUT_FILENO) == 1);
  if (format != OutputFormat::kTable) {
    PrintData(out, report.ToJson(), format);
    return kExitOk;
  }
  out << report.records << " records, " << report.runs << " runs\n";
  std::vector<std::vector<std::string>> rows;
  for (auto [name, score] :
       {std::pair{"model", &report.model}, std::pair{"frequency", &report.frequency},
        std::pair{"markov1", &report.markov1}, std::pair{"markov2", &report.markov2}}) {
    rows.push_back({name, Fixed(score->top1, 4), Fixed(score->top3, 4), Fixed(score->logloss, 4)});
  }
  PrintTable(out, {"predictor", "top1", "top3", "logloss"}, rows);
  return kExitOk;
}

int Train(const ModelOptions& options, std::ostream& out, std::ostream& err) {
  HttpClientResponse response;
  HttpClientRequest request;
  request.method = "POST";
  request.target = "/model/train";
  DaemonOptions daemon = options.daemon;
  daemon.timeout = std::chrono::minutes(10);  // a long history takes a while
  if (int status = Call(daemon, request, &response, err); status != kExitOk) {
    return status;
  }
  json body = json::parse(response.body, nullptr, false);
  OutputFormat format = ParseOutputFormat(options.output, isatty(STDOUT_FILENO) == 1);
  if (format != OutputFormat::kTable) {
    PrintData(out, body, format);
  } else {
    out << "model " << body.value("version", 0) << " trained on " << body.value("records", 0)
        << " records in " << Fixed(body.value("seconds", 0.0), 3) << " s\n";
  }
  return kExitOk;
}

int Status(const ModelOptions& options, std::ostream& out, std::ostream& err) {
  json body;
  if (int status = Fetch(options.daemon, "/model", options.output, out, err, &body);
      status != kExitOk || body.is_null()) {
    return status;
  }
  std::vector<std::vector<std::string>> rows;
  int64_t trained = body.value("trained_unix_ms", int64_t{0});
  rows.push_back({"version", std::to_string(body.value("version", 0))});
  rows.push_back({"trained", trained ? FormatTime(trained) : "never"});
  rows.push_back({"records learned", std::to_string(body.value("records", 0))});
  rows.push_back({"training time", Fixed(body.value("seconds", 0.0), 3) + " s"});
  rows.push_back({"training now", body.value("training", false) ? "yes" : "no"});
  rows.push_back({"learned since", std::to_string(body.value("observed_since_training", 0))});
  rows.push_back({"chains", std::to_string(body.value("chains", 0))});
  rows.push_back({"contexts", std::to_string(body.value("contexts", 0))});
  PrintTable(out, {"model", ""}, rows);
  return kExitOk;
}

}  // namespace

int RunModel(const ModelOptions& options, std::ostream& out, std::ostream& err) {
  if (options.action == "evaluate") return Evaluate(options, out, err);
  if (options.action == "train") return Train(options, out, err);
  return Status(options, out, err);
}

int RunPredict(const PredictOptions& options, std::ostream& out, std::ostream& err) {
  std::string target = "/predictions?limit=" + std::to_string(options.limit);
  if (!options.after.empty()) {
    std::string after;
    for (const std::string& a : options.after) after += (after.empty() ? "" : ",") + a;
    target += "&after=" + UrlEncode(after);
  }
  if (!options.chain.empty()) target += "&chain=" + UrlEncode(options.chain);
  json body;
  if (int status = Fetch(options.daemon, target, options.output, out, err, &body);
      status != kExitOk || body.is_null()) {
    return status;
  }
  std::vector<std::vector<std::string>> rows;
  if (body.contains("chains")) {
    for (const json& c : body["chains"]) {
      rows.push_back({c["chain_id"].get<std::string>(), Fixed(c["probability"].get<double>(), 3),
                      Millis(c["expected_in_ms"])});
    }
    PrintTable(out, {"chain", "probability", "expected in"}, rows);
    return kExitOk;
  }
  for (const json& c : body["candidates"]) {
    rows.push_back({c["task_id"].get<std::string>(), Fixed(c["probability"].get<double>(), 3),
                    Millis(c["expected_in_ms"]), Millis(c["expected_in_p90_ms"])});
  }
  PrintTable(out, {"task", "probability", "expected in", "p90"}, rows);
  return kExitOk;
}

}  // namespace chainctl::cli
