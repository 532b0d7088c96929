// chaind's log: one line per event on stderr, with a level and a time. With --log-file
// (which the CLI passes when it starts the daemon: STATE_DIR/chaind.log) stderr is that file,
// opened anew on SIGHUP (the logrotate convention: rename it, then SIGHUP).
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

// Makes `path` the log: opened (created with mode 0600, appended to) and put in place of
// stderr and stdout, so that whatever writes there goes to it too; `path` is kept for
// ReopenLogFile. Call once, before other threads start.
bool OpenLogFile(const std::string& path, std::string* err);
// Opens the path of OpenLogFile anew and puts it in place of stderr and stdout (the old file,
// renamed away by logrotate, is closed). Fails, keeping the old file, if there is no such
// path or it cannot be opened. Loop thread only.
bool ReopenLogFile(std::string* err);
// The path of OpenLogFile; "" when the log is the stderr chaind was started with.
const std::string& LogFilePath();

}  // namespace chainctl::daemon
