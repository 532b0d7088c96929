// chainctl history import: sends a history JSONL v1 file to chaind (POST /history).
#include <ostream>
#include <string>
#include <vector>

#include "cli/api_call.h"
#include "cli/app.h"
#include "cli/output.h"
#include "common/predict/history_file.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

// A POST /history body holds at most this much, far below chaind's default body limit of
// 16 MiB, so that one batch is one short transaction.
constexpr size_t kMaxBatchBytes = 4 << 20;
constexpr size_t kMaxBatchRecords = 20'000;

// The records of a file as POST /history bodies, in file order.
struct Batches {
  std::vector<std::string> bodies;
  std::vector<size_t> counts;  // records in each body
  size_t records = 0;

  void Add(const HistoryRecord& record) {
    std::string line = ToJsonlV1(record).dump() + "\n";
    if (bodies.empty() || counts.back() == kMaxBatchRecords ||
        bodies.back().size() + line.size() > kMaxBatchBytes) {
      bodies.emplace_back();
      counts.push_back(0);
    }
    bodies.back() += line;
    ++counts.back();
    ++records;
  }
};

}  // namespace

int RunHistoryImport(const RunsOptions& options, std::ostream& out, std::ostream& err) {
  // The whole file is read and checked before anything is sent: a bad line is reported with
  // its line number and nothing is imported.
  Batches batches;
  std::string why;
  bool read = ReadHistoryFile(
      options.file,
      [&batches](HistoryRecord&& record, std::string*) {
        batches.Add(record);
        return true;
      },
      &why);
  if (!read) {
    err << "chainctl: " << why << "\n";
    return kExitInvalid;
  }
  size_t imported = 0, skipped = 0;
  json first_seq = nullptr, last_seq = nullptr;
  for (size_t i = 0; i < batches.bodies.size(); ++i) {
    HttpClientResponse response;
    int status = Call(options.daemon,
                      {"POST", "/history", "application/x-ndjson", std::move(batches.bodies[i])},
                      &response, err);
    if (status != kExitOk) {
      if (imported > 0) {
        err << "chainctl: " << imported << " of " << batches.records << " records from "
            << options.file
            << " were imported before the failure and stay stored; importing the file again "
               "adds only the others\n";
      }
      return status;
    }
    json answer = json::parse(response.body, nullptr, false);
    if (!answer.is_object() || !answer["imported"].is_number_unsigned()) {
      err << "chainctl: unexpected answer to POST /history: " << response.body << "\n";
      return kExitUnreachable;
    }
    imported += answer["imported"].get<size_t>();
    skipped += answer.value("skipped", size_t{0});
    if (first_seq.is_null() && answer.contains("first_seq")) first_seq = answer["first_seq"];
    if (answer.contains("last_seq")) last_seq = answer["last_seq"];
  }
  err << "imported " << imported << " record" << (imported == 1 ? "" : "s") << " from "
      << options.file;
  if (skipped > 0) err << " (" << skipped << " stored already, skipped)";
  err << "\n";
  if (options.output == "json" || options.output == "yaml") {
    json summary = {{"file", options.file},
                    {"imported", imported},
                    {"skipped", skipped},
                    {"batches", batches.bodies.size()}};
    if (!first_seq.is_null()) summary["first_seq"] = first_seq;
    if (!last_seq.is_null()) summary["last_seq"] = last_seq;
    PrintData(out, summary, ParseOutputFormat(options.output, false));
  }
  return kExitOk;
}

}  // namespace chainctl::cli
