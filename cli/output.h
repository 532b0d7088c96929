// How chainctl prints results: tables for people, JSON or YAML for scripts.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace chainctl::cli {

enum class OutputFormat { kTable, kJson, kYaml };

// "table", "json", "yaml"; "" means table on a terminal and JSON otherwise.
OutputFormat ParseOutputFormat(const std::string& name, bool stdout_is_tty);

// Columns padded to their widest cell; the header row in capitals.
void PrintTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

// `value` as indented JSON or as YAML.
void PrintData(std::ostream& out, const nlohmann::json& value, OutputFormat format);

// How FormatUtc writes a time: "2026-11-24 05:48:11" or ISO 8601's "2026-11-24T05:48:11".
enum class TimeStyle { kReadable, kIso8601 };

// A Unix time in milliseconds in UTC, to the second, as `style` says.
std::string FormatUtc(int64_t unix_ms, TimeStyle style);

// "2026-11-24 05:48:11" (UTC) for a Unix time in milliseconds.
std::string FormatTime(int64_t unix_ms);

// "1.25s" for a duration in milliseconds.
std::string FormatSeconds(int64_t ms);

}  // namespace chainctl::cli
