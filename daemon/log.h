// chaind's log: one line per event on stderr (which the CLI points at
// STATE_DIR/chaind.log when it starts the daemon), with a level and a time.
#pragma once

#include <string>
#include <string_view>

namespace chainctl::daemon {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// "debug", "info", "warning", "error"; false for anything else.
bool ParseLogLevel(std::string_view name, LogLevel* level);
void SetLogLevel(LogLevel level);

// Writes "2026-11-24T05:48:11.123Z info message" if `level` is enabled.
// Thread-safe (one write(2) per line).
void Log(LogLevel level, const std::string& message);

}  // namespace chainctl::daemon
