// Reading history JSONL v1 (../shared/traces/README.md, common/predict/history_record.h): files for
// `chainctl history import` and `chainctl model evaluate`, and the lines of a POST /history
// body in chaind.
//
// A file is UTF-8, one JSON object per line; blank lines (only spaces, tabs or a CR) are
// skipped and a line may end in CRLF. A `.jsonl.gz` file is the same, gzip-compressed; the
// compression is recognised by its content, not by the name, so any file may be either.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/predict/history_record.h"

namespace chainctl {

// The longest line read, without its newline: a longer one is an error (so a file with no
// newlines, or a gzip bomb, cannot make the reader hold more than this at once).
inline constexpr size_t kMaxHistoryLineBytes = size_t{1} << 20;

// Reads one line of JSONL v1 (without its newline): decodes it as JSON (DecodeJsonText: UTF-8,
// at most kMaxJsonDepth levels), then FromJsonlV1. On failure the message names the field (or
// says that the line is not UTF-8, nests too deep or is not JSON, and at which byte) but
// neither the file nor the line: that is the caller's. Never throws.
bool ParseHistoryLine(std::string_view line, HistoryRecord* record, std::string* err);

// Whether `line` is blank (empty, or only spaces, tabs and CRs): skipped by the readers.
bool IsBlankHistoryLine(std::string_view line);

// Called with each record, in file order. Returns false to stop the reading, with *err set.
using HistoryRecordSink = std::function<bool(HistoryRecord&& record, std::string* err)>;

// Reads the JSONL v1 file at `path`, plain or gzip-compressed ("-": stdin, which is not
// closed), and calls `each` for every record, in order, as it is read. Stops at the first
// error, which *err gives as "FILE:LINE: message" (FILE is `path` as given; LINE counts from
// 1, blank lines included): a line that is not JSON, a record ParseHistoryLine refuses, a
// line over kMaxHistoryLineBytes, a gzip stream that is corrupt or ends early (LINE is then
// the first line not passed to `each`: zlib finds the damage a chunk of up to 64 KiB after
// the lines it spoils, and those are not passed on), or `each` returning false (its message,
// after the record's FILE:LINE). A file that cannot be opened is "FILE: message". Records
// before the error have been passed to `each`.
bool ReadHistoryFile(const std::string& path, const HistoryRecordSink& each, std::string* err);

// ReadHistoryFile collecting the records into *out (cleared first; on failure it holds the
// records before the error).
bool LoadHistoryFile(const std::string& path, std::vector<HistoryRecord>* out, std::string* err);

}  // namespace chainctl
