// Steps of chain loading (chain_load.cc), split by concern. Not for use
// outside common/.
#pragma once

#include <string>

#include "common/chain/chain.h"
#include "common/chain/load.h"
#include "common/diagnostic.h"
#include "common/source_doc.h"

namespace chainctl::internal {

// Turns JSON Pointers into diagnostics placed at the node's position.
class Reporter {
 public:
  Reporter(const SourceDoc& doc, Diagnostics* out) : doc_(doc), out_(out) {}
  // At the start of the node at `pointer`.
  void At(const std::string& pointer, std::string message);
  // At the key of the member at `pointer` (for fields that are wrong as a whole).
  void AtKey(const std::string& pointer, std::string message);
  const SourceDoc& doc() const { return doc_; }

 private:
  const SourceDoc& doc_;
  Diagnostics* out_;
};

// Checks the document against schemas/chain.schema.json, and reports every
// unknown field at its key (with a suggestion when one is close).
void CheckFileSchema(const SourceDoc& doc, Reporter* report);

// Reads the document into the model, taking only values of the right type
// (the schema check has reported the others), one TaskSpec per element of
// `tasks` so that tasks[i] is /tasks/i. Reports values that are well typed
// but wrong: durations, sizes, cpu, `when` values. `cache` is on/off/true/false.
Chain DecodeChain(const nlohmann::json& root, Reporter* report);

// Checks across fields: task ids, dependencies, cycles, executables, the
// task schemas, `when` and `input_map` paths, environment names, the
// `sources`/`outputs` globs (common/source_glob.h's grammar), and resource
// requests with options.resource_misfits. Resolves relative
// executable paths against options.base_dir.
void CheckChain(Chain* chain, const LoadOptions& options, Reporter* report);

// The chain's places (check_places.cc): fills in source_dir (options.base_dir, absolute) unless
// options.require_absolute_executables (the API: then it must be absolute if given), checks
// that the working_dirs and env_file resolve (and, with options.check_executables, exist), and
// sets each task's cwd and source_dir.
void CheckPlaces(Chain* chain, const LoadOptions& options, Reporter* report);

// "did you mean" helper: the candidate closest to `word` within an edit
// distance of 2, or "".
std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace chainctl::internal
