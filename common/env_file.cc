#include "common/env_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace chainctl {
namespace {

constexpr size_t kMaxEnvFileBytes = 1 << 20;

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// The value as written after '=': unquoted, 'single' or "double" quoted. False if a quote is
// not closed at the end of the value.
bool Unquote(std::string_view raw, std::string* value) {
  raw = Trim(raw);
  value->clear();
  if (raw.empty() || (raw[0] != '"' && raw[0] != '\'')) {
    *value = raw;
    return true;
  }
  char quote = raw[0];
  if (raw.size() < 2 || raw.back() != quote) return false;
  std::string_view inner = raw.substr(1, raw.size() - 2);
  if (quote == '\'') {
    *value = inner;
    return true;
  }
  for (size_t i = 0; i < inner.size(); ++i) {
    char c = inner[i];
    if (c == '\\' && i + 1 < inner.size()) {
      char next = inner[++i];
      c = next == 'n' ? '\n' : next == 't' ? '\t' : next;
      if (next != 'n' && next != 't' && next != '"' && next != '\\') value->push_back('\\');
    }
    value->push_back(c);
  }
  return true;
}

}  // namespace

bool IsEnvName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name) {
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool ParseEnvText(std::string_view text, const std::string& file, EnvPairs* out, std::string* err) {
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line[0] == '#') continue;
    if (line.starts_with("export ")) line = Trim(line.substr(7));
    size_t eq = line.find('=');
    std::string where = file + ":" + std::to_string(line_no) + ": ";
    if (eq == std::string_view::npos) {
      *err = where + "expected KEY=VALUE";
      return false;
    }
    std::string name(Trim(line.substr(0, eq)));
    if (!IsEnvName(name)) {
      *err = where + "invalid variable name \"" + name + "\"";
      return false;
    }
    std::string value;
    if (!Unquote(line.substr(eq + 1), &value)) {
      *err = where + "the value of " + name + " has a quote that is not closed";
      return false;
    }
    out->emplace_back(std::move(name), std::move(value));
  }
  return true;
}

bool ReadEnvFile(const std::string& path, EnvPairs* out, std::string* err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *err = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::string text(kMaxEnvFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (in.bad()) {
    *err = "cannot read " + path;
    return false;
  }
  if (text.size() > kMaxEnvFileBytes) {
    *err = path + " is over 1 MiB: not an environment file";
    return false;
  }
  return ParseEnvText(text, path, out, err);
}

}  // namespace chainctl
