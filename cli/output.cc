#include "cli/output.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "common/yaml_util.h"

namespace chainctl::cli {

OutputFormat ParseOutputFormat(const std::string& name, bool stdout_is_tty) {
  if (name == "json") return OutputFormat::kJson;
  if (name == "yaml") return OutputFormat::kYaml;
  if (name == "table") return OutputFormat::kTable;
  return stdout_is_tty ? OutputFormat::kTable : OutputFormat::kJson;
}

void PrintTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells, bool upper) {
    std::string text;
    for (size_t c = 0; c < cells.size(); ++c) {
      std::string cell = cells[c];
      if (upper) std::transform(cell.begin(), cell.end(), cell.begin(), ::toupper);
      text += cell;
      if (c + 1 < cells.size()) text += std::string(width[c] - cells[c].size() + 3, ' ');
    }
    out << text << "\n";
  };
  line(header, true);
  for (const auto& row : rows) line(row, false);
}

void PrintData(std::ostream& out, const nlohmann::json& value, OutputFormat format) {
  if (format == OutputFormat::kYaml) {
    out << JsonToYaml(value);
  } else {
    out << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
}

std::string FormatSeconds(int64_t ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2fs", static_cast<double>(ms) / 1000.0);
  return text;
}

std::string FormatUtc(int64_t unix_ms, TimeStyle style) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  // Literal formats, so that the compiler checks them.
  size_t size = style == TimeStyle::kIso8601
                    ? std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm)
                    : std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(text, size);
}

std::string FormatTime(int64_t unix_ms) { return FormatUtc(unix_ms, TimeStyle::kReadable); }

}  // namespace chainctl::cli
