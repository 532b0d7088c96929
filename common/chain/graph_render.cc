#include "common/chain/graph_render.h"

#include <algorithm>
#include <set>

namespace chainctl {
namespace {

// DOT double-quoted string.
std::string DotQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Mermaid label text in double quotes; '"' has to be an entity.
std::string MermaidQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("#quot;") : std::string(1, c);
  return out + "\"";
}

struct Highlight {
  std::vector<bool> node;
  std::set<std::pair<int, int>> edge;  // (dependency, dependent)
};

Highlight CriticalHighlight(const Dag& dag) {
  CriticalPath cp = ComputeCriticalPath(dag, std::vector<double>(dag.nodes.size(), 1.0));
  Highlight h{std::vector<bool>(dag.nodes.size(), false), {}};
  for (size_t k = 0; k < cp.path.size(); ++k) {
    h.node[static_cast<size_t>(cp.path[k])] = true;
    if (k > 0) h.edge.emplace(cp.path[k - 1], cp.path[k]);
  }
  return h;
}

std::string Dot(const Chain& chain, const Dag& dag, std::string_view name) {
  Highlight h = CriticalHighlight(dag);
  std::string out = "digraph " + DotQuote(name) + " {\n";
  out += "  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"sans-serif\"];\n";
  for (int i : dag.topo_order) {
    const TaskSpec& t = chain.tasks[static_cast<size_t>(i)];
    out += "  " + DotQuote(t.task_id);
    std::vector<std::string> attrs;
    if (h.node[static_cast<size_t>(i)]) attrs.push_back("penwidth=2");
    if (!t.when.empty()) attrs.push_back("style=\"rounded,dashed\"");
    if (!attrs.empty()) {
      out += " [";
      for (size_t k = 0; k < attrs.size(); ++k) out += (k ? ", " : "") + attrs[k];
      out += "]";
    }
    out += ";\n";
  }
  for (int i : dag.topo_order) {
    for (int d : dag.nodes[static_cast<size_t>(i)].deps) {
      out += "  " + DotQuote(dag.nodes[static_cast<size_t>(d)].id) + " -> " +
             DotQuote(dag.nodes[static_cast<size_t>(i)].id);
      if (h.edge.contains({d, i})) out += " [penwidth=2]";
      out += ";\n";
    }
  }
  return out + "}\n";
}

std::string Mermaid(const Dag& dag) {
  Highlight h = CriticalHighlight(dag);
  std::string out = "flowchart LR\n";
  for (int i : dag.topo_order) {
    out += "  n" + std::to_string(i) + "[" + MermaidQuote(dag.nodes[static_cast<size_t>(i)].id) +
           "]\n";
  }
  std::vector<int> bold_links;
  int link = 0;
  for (int i : dag.topo_order) {
    for (int d : dag.nodes[static_cast<size_t>(i)].deps) {
      out += "  n" + std::to_string(d) + " --> n" + std::to_string(i) + "\n";
      if (h.edge.contains({d, i})) bold_links.push_back(link);
      ++link;
    }
  }
  for (size_t i = 0; i < h.node.size(); ++i) {
    if (h.node[i]) out += "  style n" + std::to_string(i) + " stroke-width:3px\n";
  }
  for (int l : bold_links) out += "  linkStyle " + std::to_string(l) + " stroke-width:3px\n";
  return out;
}

std::string Text(const Chain& chain, const Dag& dag, std::string_view name) {
  Highlight h = CriticalHighlight(dag);
  auto count = [](size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  std::string out = std::string(name) + ": " + count(dag.nodes.size(), "task", "tasks") + ", " +
                    count(dag.roots.size(), "root", "roots") + ", " +
                    count(dag.leaves.size(), "leaf", "leaves") + "\n";
  size_t width = 0;
  for (const DagNode& n : dag.nodes) width = std::max(width, n.id.size());
  for (size_t k = 0; k < dag.topo_order.size(); ++k) {
    size_t i = static_cast<size_t>(dag.topo_order[k]);
    const DagNode& n = dag.nodes[i];
    std::string line = (h.node[i] ? "* " : "  ") + n.id;
    if (!n.deps.empty()) {
      line += std::string(width - n.id.size() + 2, ' ') + "<- ";
      for (size_t d = 0; d < n.deps.size(); ++d) {
        line += (d ? ", " : "") + dag.nodes[static_cast<size_t>(n.deps[d])].id;
      }
    }
    if (!chain.tasks[i].when.empty()) line += "  (conditional)";
    out += line + "\n";
  }
  out += "(* critical path)\n";
  return out;
}

}  // namespace

std::optional<GraphFormat> ParseGraphFormat(std::string_view name) {
  if (name == "dot") return GraphFormat::kDot;
  if (name == "mermaid") return GraphFormat::kMermaid;
  if (name == "text") return GraphFormat::kText;
  return std::nullopt;
}

std::string RenderGraph(const Chain& chain, const Dag& dag, std::string_view name,
                        GraphFormat format) {
  switch (format) {
    case GraphFormat::kDot:
      return Dot(chain, dag, name);
    case GraphFormat::kMermaid:
      return Mermaid(dag);
    case GraphFormat::kText:
      return Text(chain, dag, name);
  }
  return "";
}

}  // namespace chainctl
