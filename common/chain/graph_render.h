// Drawing a chain's DAG as Graphviz DOT, Mermaid or plain text. Critical
// path (by task count) highlighted in each.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/chain/chain.h"
#include "common/chain/dag.h"

namespace chainctl {

enum class GraphFormat { kDot, kMermaid, kText };

std::optional<GraphFormat> ParseGraphFormat(std::string_view name);

// `dag` must be BuildDag(chain). `name` titles the graph (chain_id or file).
std::string RenderGraph(const Chain& chain, const Dag& dag, std::string_view name,
                        GraphFormat format);

}  // namespace chainctl
