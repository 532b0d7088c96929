// Diagnostics: errors about a chain file, each pointing at a place in it.
//
// Error convention of common/: functions that can fail return bool or
// std::optional and describe the failure in a `std::string* err` (ninja's
// habit); validation, which finds many errors at once, appends Diagnostics.
// Exceptions thrown by libraries are caught where they are called.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace chainctl {

// A place in a source text. Lines and columns count from 1; 0 means unknown.
struct SourcePos {
  int line = 0;
  int column = 0;
};

struct Diagnostic {
  std::string file;     // as the user named it ("-" for stdin)
  SourcePos pos;        // of the offending node itself
  std::string path;     // field path, e.g. "tasks[2].dependencies[0]"; empty: the file
  std::string message;  // one line, no trailing period
};

using Diagnostics = std::vector<Diagnostic>;

// "FILE:LINE:COL: PATH: MESSAGE", leaving out the parts that are unknown.
std::string FormatDiagnostic(const Diagnostic& d);

// Sorts by position, then path, then message, and drops exact duplicates,
// so a file's errors always come out in the same order.
void SortDiagnostics(Diagnostics* diags);

// {"file", "line", "column", "path", "message"}.
nlohmann::json DiagnosticToJson(const Diagnostic& d);

}  // namespace chainctl
