#include "common/diagnostic.h"

#include <algorithm>
#include <tuple>

namespace chainctl {

std::string FormatDiagnostic(const Diagnostic& d) {
  std::string out = d.file;
  if (d.pos.line > 0) {
    out += ":" + std::to_string(d.pos.line);
    if (d.pos.column > 0) out += ":" + std::to_string(d.pos.column);
  }
  out += ": ";
  if (!d.path.empty()) out += d.path + ": ";
  out += d.message;
  return out;
}

void SortDiagnostics(Diagnostics* diags) {
  auto key = [](const Diagnostic& d) {
    return std::tie(d.file, d.pos.line, d.pos.column, d.path, d.message);
  };
  std::stable_sort(diags->begin(), diags->end(),
                   [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
  diags->erase(
      std::unique(diags->begin(), diags->end(),
                  [&](const Diagnostic& a, const Diagnostic& b) { return key(a) == key(b); }),
      diags->end());
}

nlohmann::json DiagnosticToJson(const Diagnostic& d) {
  return {{"file", d.file},
          {"line", d.pos.line},
          {"column", d.pos.column},
          {"path", d.path},
          {"message", d.message}};
}

}  // namespace chainctl
