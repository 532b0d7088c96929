// Environment files (DESIGN.md §7: `--env-file F`, a chain's `env_file:`): KEY=VALUE lines, as
// docker and systemd read them. Blank lines and lines starting with # are skipped; a line may
// start with `export `; a value in matching double quotes may use \" \\ \n \t, one in single
// quotes is taken as is, an unquoted one loses the spaces around it. Errors name the file and
// the line, never a value (values may be secrets).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chainctl {

using EnvPairs = std::vector<std::pair<std::string, std::string>>;

// A name a task may be given: [A-Za-z_][A-Za-z0-9_]*.
bool IsEnvName(std::string_view name);

// Appends the pairs of `text` (from `file`, for errors) to *out, in order. False at the first
// bad line, *err saying where and why.
bool ParseEnvText(std::string_view text, const std::string& file, EnvPairs* out, std::string* err);

// Reads `path` (at most 1 MiB) and parses it.
bool ReadEnvFile(const std::string& path, EnvPairs* out, std::string* err);

}  // namespace chainctl
