#include "common/chain/dag.h"

#include <algorithm>
#include <functional>
#include <queue>
#include <unordered_map>

namespace chainctl {

std::vector<std::vector<int>> FindCycles(const std::vector<std::vector<int>>& deps) {
  enum Visit { kNone, kInStack, kDone };
  std::vector<Visit> mark(deps.size(), kNone);
  std::vector<std::vector<int>> cycles;
  // Iterative depth-first search: a chain can be 100,000 tasks long.
  struct Frame {
    int node;
    size_t next = 0;
  };
  for (size_t start = 0; start < deps.size(); ++start) {
    if (mark[start] != kNone) continue;
    std::vector<Frame> stack{{static_cast<int>(start)}};
    mark[start] = kInStack;
    while (!stack.empty()) {
      Frame& top = stack.back();
      const std::vector<int>& out = deps[static_cast<size_t>(top.node)];
      if (top.next == out.size()) {
        mark[static_cast<size_t>(top.node)] = kDone;
        stack.pop_back();
        continue;
      }
      int next = out[top.next++];
      if (next == top.node) continue;
      Visit& m = mark[static_cast<size_t>(next)];
      if (m == kNone) {
        m = kInStack;
        stack.push_back({next});
      } else if (m == kInStack) {
        std::vector<int> cycle;
        auto it = std::find_if(stack.begin(), stack.end(),
                               [&](const Frame& f) { return f.node == next; });
        for (; it != stack.end(); ++it) cycle.push_back(it->node);
        cycle.push_back(next);
        cycles.push_back(std::move(cycle));
      }
    }
  }
  return cycles;
}

std::string DescribeCycle(const std::vector<int>& cycle, const std::vector<std::string>& ids) {
  std::string out = "cycle: ";
  for (size_t i = 0; i < cycle.size(); ++i) {
    if (i > 0) out += " -> ";
    out += ids[static_cast<size_t>(cycle[i])];
  }
  return out;
}

bool BuildDag(const Chain& chain, Dag* dag, std::string* err) {
  const size_t n = chain.tasks.size();
  std::unordered_map<std::string_view, int> index;
  for (size_t i = 0; i < n; ++i) index.emplace(chain.tasks[i].task_id, static_cast<int>(i));
  dag->nodes.assign(n, {});
  std::vector<std::vector<int>> deps(n);
  for (size_t i = 0; i < n; ++i) {
    DagNode& node = dag->nodes[i];
    node.id = chain.tasks[i].task_id;
    for (const std::string& d : chain.tasks[i].dependencies) {
      auto it = index.find(d);
      if (it == index.end() || it->second == static_cast<int>(i)) {
        *err = "task \"" + node.id + "\": bad dependency \"" + d + "\"";
        return false;
      }
      node.deps.push_back(it->second);
      dag->nodes[static_cast<size_t>(it->second)].dependents.push_back(static_cast<int>(i));
    }
    deps[i] = node.deps;
  }
  std::vector<std::string> ids;
  for (const DagNode& node : dag->nodes) ids.push_back(node.id);
  if (auto cycles = FindCycles(deps); !cycles.empty()) {
    *err = DescribeCycle(cycles.front(), ids);
    return false;
  }
  // Kahn's algorithm; the min-heap keeps file order among ready nodes.
  std::vector<size_t> waiting(n);
  std::priority_queue<int, std::vector<int>, std::greater<>> ready;
  dag->topo_order.clear();
  dag->roots.clear();
  dag->leaves.clear();
  for (size_t i = 0; i < n; ++i) {
    waiting[i] = dag->nodes[i].deps.size();
    if (waiting[i] == 0) {
      ready.push(static_cast<int>(i));
      dag->roots.push_back(static_cast<int>(i));
    }
    if (dag->nodes[i].dependents.empty()) dag->leaves.push_back(static_cast<int>(i));
  }
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    dag->topo_order.push_back(i);
    for (int d : dag->nodes[static_cast<size_t>(i)].dependents) {
      if (--waiting[static_cast<size_t>(d)] == 0) ready.push(d);
    }
  }
  return true;
}

CriticalPath ComputeCriticalPath(const Dag& dag, const std::vector<double>& weights) {
  CriticalPath cp;
  cp.remaining.assign(dag.nodes.size(), 0.0);
  for (auto it = dag.topo_order.rbegin(); it != dag.topo_order.rend(); ++it) {
    size_t i = static_cast<size_t>(*it);
    double after = 0;
    for (int d : dag.nodes[i].dependents)
      after = std::max(after, cp.remaining[static_cast<size_t>(d)]);
    cp.remaining[i] = weights[i] + after;
  }
  auto heaviest = [&](const std::vector<int>& candidates) {
    int best = -1;
    for (int c : candidates) {
      if (best < 0 ||
          cp.remaining[static_cast<size_t>(c)] > cp.remaining[static_cast<size_t>(best)]) {
        best = c;
      }
    }
    return best;
  };
  for (int node = heaviest(dag.roots); node >= 0;
       node = heaviest(dag.nodes[static_cast<size_t>(node)].dependents)) {
    cp.path.push_back(node);
    cp.length += weights[static_cast<size_t>(node)];
  }
  return cp;
}

bool VerifyDag(const Dag& dag, std::string* err) {
  const size_t n = dag.nodes.size();
  auto fail = [&](std::string message) {
    *err = std::move(message);
    return false;
  };
  std::vector<int> position(n, -1);
  if (dag.topo_order.size() != n) return fail("topo_order does not hold every node once");
  for (size_t k = 0; k < n; ++k) {
    int i = dag.topo_order[k];
    if (i < 0 || static_cast<size_t>(i) >= n || position[static_cast<size_t>(i)] >= 0) {
      return fail("topo_order does not hold every node once");
    }
    position[static_cast<size_t>(i)] = static_cast<int>(k);
  }
  std::vector<int> roots, leaves;
  for (size_t i = 0; i < n; ++i) {
    const DagNode& node = dag.nodes[i];
    for (int d : node.deps) {
      const auto& back = dag.nodes[static_cast<size_t>(d)].dependents;
      if (std::count(back.begin(), back.end(), static_cast<int>(i)) != 1) {
        return fail(node.id + ": dependency on " + dag.nodes[static_cast<size_t>(d)].id +
                    " is not mirrored in its dependents");
      }
      if (position[static_cast<size_t>(d)] >= position[i]) {
        return fail(node.id + " comes before its dependency " +
                    dag.nodes[static_cast<size_t>(d)].id + " in topo_order");
      }
    }
    for (int d : node.dependents) {
      const auto& fwd = dag.nodes[static_cast<size_t>(d)].deps;
      if (std::count(fwd.begin(), fwd.end(), static_cast<int>(i)) != 1) {
        return fail(node.id + ": dependent " + dag.nodes[static_cast<size_t>(d)].id +
                    " does not list it as a dependency");
      }
    }
    if (node.deps.empty()) roots.push_back(static_cast<int>(i));
    if (node.dependents.empty()) leaves.push_back(static_cast<int>(i));
  }
  if (roots != dag.roots) return fail("roots are not exactly the nodes without dependencies");
  if (leaves != dag.leaves) return fail("leaves are not exactly the nodes without dependents");
  return true;
}

std::vector<bool> WithDependencies(const Dag& dag, const std::vector<int>& targets) {
  std::vector<bool> marked(dag.nodes.size(), false);
  std::vector<int> stack = targets;
  while (!stack.empty()) {
    int i = stack.back();
    stack.pop_back();
    if (marked[static_cast<size_t>(i)]) continue;
    marked[static_cast<size_t>(i)] = true;
    const std::vector<int>& deps = dag.nodes[static_cast<size_t>(i)].deps;
    stack.insert(stack.end(), deps.begin(), deps.end());
  }
  return marked;
}

}  // namespace chainctl
