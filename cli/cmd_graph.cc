// chainctl graph FILE --format dot|mermaid|text
#include <filesystem>
#include <ostream>

#include "cli/app.h"
#include "common/chain/dag.h"
#include "common/chain/graph_render.h"
#include "common/chain/load.h"

namespace chainctl::cli {

int RunGraph(const GraphOptions& options, std::ostream& out, std::ostream& err) {
  std::optional<Chain> chain = LoadOrReport(options.file, err);
  if (!chain) return kExitInvalid;
  Dag dag;
  std::string build_err;
  if (!BuildDag(*chain, &dag, &build_err)) {  // cannot happen after a clean load
    err << options.file << ": " << build_err << "\n";
    return kExitInvalid;
  }
  std::string name = chain->chain_id.empty() ? std::filesystem::path(options.file).stem().string()
                                             : chain->chain_id;
  out << RenderGraph(*chain, dag, name, *ParseGraphFormat(options.format));
  return kExitOk;
}

}  // namespace chainctl::cli
