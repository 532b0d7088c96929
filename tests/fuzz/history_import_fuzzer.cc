// libFuzzer target for reading history JSONL v1 (common/predict/history_file.h, what `chainctl
// history import` and POST /history read): any bytes, split into lines as a history file is, each
// line that is not blank through ParseHistoryLine. A record read passes ValidateHistoryRecord and
// comes back unchanged through ToJsonlV1 and FromJsonlV1, and through the text of that line
// read again (an export imported again); a line refused says why.
// Run with scripts/fuzz import SECONDS.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/json_text.h"
#include "common/predict/history_file.h"
#include "common/predict/history_record.h"

namespace {

using chainctl::HistoryRecord;

void CheckLine(std::string_view line) {
  HistoryRecord record;
  std::string err;
  if (!chainctl::ParseHistoryLine(line, &record, &err)) {
    if (err.empty()) __builtin_trap();  // a refused line says why
    return;
  }
  if (record.seq != 0 || !chainctl::ValidateHistoryRecord(record, &err)) __builtin_trap();
  // history_record.h: a record read from a v1 line is written back unchanged.
  nlohmann::json written = chainctl::ToJsonlV1(record);
  HistoryRecord back;
  if (!chainctl::FromJsonlV1(written, &back, &err) || back != record) __builtin_trap();
  // The text of that line (its strings are UTF-8: they were read from checked text).
  HistoryRecord again;
  if (!chainctl::ParseHistoryLine(chainctl::DumpJson(written), &again, &err) || again != record) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  while (!text.empty()) {
    size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);  // a CR before the newline stays
    if (!chainctl::IsBlankHistoryLine(line)) CheckLine(line);
    if (newline == std::string_view::npos) break;
    text.remove_prefix(newline + 1);
  }
  return 0;
}
