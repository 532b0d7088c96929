// Durations ("250ms", "1.5s", "2m", "1h30m") and sizes ("512Mi", "1G", 4096)
// as written in chain files.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chainctl {

using Duration = std::chrono::milliseconds;

// One or more groups of a decimal number and a unit (ms, s, m, h, d), e.g.
// "1h30m". Fractions below a millisecond are truncated. Fails on anything
// else, on negative values and on overflow of int64 milliseconds.
std::optional<Duration> ParseDuration(std::string_view text, std::string* err);

// Shortest exact form, e.g. 90000ms -> "1m30s", 1500ms -> "1.5s".
std::string FormatDuration(Duration d);

// Bytes: plain digits, or a decimal number with a suffix: K M G T P E (powers
// of 1000; "k" too) or Ki Mi Gi Ti Pi Ei (powers of 1024), optionally followed
// by "B". Fails on anything else and on overflow of uint64.
std::optional<uint64_t> ParseSize(std::string_view text, std::string* err);

// "1.5Gi"-style shortest exact form for a byte count.
std::string FormatSize(uint64_t bytes);

// CPU cores as millicores: a number of cores as text ("0.5") or millicores
// ("500m"). Must be above zero. Numbers in the file go through
// CpuFromCores().
std::optional<int64_t> ParseCpu(std::string_view text, std::string* err);
std::optional<int64_t> CpuFromCores(double cores, std::string* err);

}  // namespace chainctl
