// Loading a chain definition: parse (YAML or JSON), check against the file
// schema, decode into the model, check the whole. Every error of a file is
// reported at once, sorted by position.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/chain/chain.h"
#include "common/diagnostic.h"
#include "common/source_doc.h"

namespace chainctl {

// A resource request that can never be admitted: `field` is the member of
// resource_requirements ("cpu", "memory" or "gpu") and `message` says why, e.g. "needs 2
// GPUs; chaind has 1 (--gpus 0)".
struct ResourceMisfit {
  std::string field;
  std::string message;
};

struct LoadOptions {
  // Folder that relative executable_code_location paths are resolved
  // against; empty: the current directory. LoadChainFile sets it to the
  // file's folder when empty.
  std::string base_dir;
  // Check that local executables exist and are executable.
  bool check_executables = true;
  // Refuse relative executable paths (the API: there is no chain file folder
  // to resolve them against; chainctl apply sends absolute ones).
  bool require_absolute_executables = false;
  SourceFormat format = SourceFormat::kAuto;
  ParseLimits limits;
  // If set, called with each task's resource_requirements; every misfit it returns is an
  // error at that field, "task ID " + message (chaind: requests over its capacity).
  std::function<std::vector<ResourceMisfit>(const ResourceRequirements&)> resource_misfits;
};

// Parses and checks `text`; `file_name` is used in diagnostics and to pick
// the format. Returns the chain, with executable paths made absolute, or
// nullopt if there is any error (all appended to *diags, sorted). *malformed,
// if given, tells whether the text could not be read as YAML/JSON at all (a
// 400 for the API) rather than read but invalid (a 422).
std::optional<Chain> ParseChain(std::string_view text, std::string_view file_name,
                                const LoadOptions& options, Diagnostics* diags,
                                bool* malformed = nullptr);

// Reads `path` ("-": standard input, at most options.limits.max_bytes) and
// calls ParseChain.
std::optional<Chain> LoadChainFile(const std::string& path, LoadOptions options,
                                   Diagnostics* diags);

}  // namespace chainctl
