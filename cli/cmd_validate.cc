// chainctl validate FILE...
#include <ostream>

#include "cli/app.h"
#include "cli/ci_report.h"
#include "common/chain/load.h"

namespace chainctl::cli {
namespace {

// A diagnostic on stderr; under GITHUB_ACTIONS=true also as an annotation at its place.
void PrintDiagnostic(const Diagnostic& d, std::ostream& err) {
  err << FormatDiagnostic(d) << "\n";
  if (DetectCi() == CiKind::kGithub) err << GithubDiagnostic(d) << "\n";
}

}  // namespace

std::optional<Chain> LoadOrReport(const std::string& file, std::ostream& err) {
  Diagnostics diags;
  std::optional<Chain> chain = LoadChainFile(file, {}, &diags);
  for (const Diagnostic& d : diags) PrintDiagnostic(d, err);
  return chain;
}

int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err) {
  Diagnostics all;
  for (const std::string& file : options.files) {
    Diagnostics diags;
    std::optional<Chain> chain = LoadChainFile(file, {}, &diags);
    if (chain && options.output == "text") {
      out << file << ": ok (" << chain->tasks.size()
          << (chain->tasks.size() == 1 ? " task)\n" : " tasks)\n");
    }
    all.insert(all.end(), diags.begin(), diags.end());
  }
  if (options.output == "json") {
    nlohmann::json errors = nlohmann::json::array();
    for (const Diagnostic& d : all) {
      errors.push_back(DiagnosticToJson(d));
      if (DetectCi() == CiKind::kGithub) err << GithubDiagnostic(d) << "\n";
    }
    out << errors.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    for (const Diagnostic& d : all) PrintDiagnostic(d, err);
    if (!all.empty()) {
      err << all.size() << (all.size() == 1 ? " error\n" : " errors\n");
    }
  }
  return all.empty() ? kExitOk : kExitInvalid;
}

}  // namespace chainctl::cli
