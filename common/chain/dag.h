// The DAG of a chain as plain structs (ninja's graph.h habit): nodes are
// indices into Chain::tasks, so tasks[i] is nodes[i].
#pragma once

#include <string>
#include <vector>

#include "common/chain/chain.h"

namespace chainctl {

struct DagNode {
  std::string id;
  std::vector<int> deps;        // indices of the tasks this one waits for, in file order
  std::vector<int> dependents;  // indices of the tasks that wait for this one, ascending
};

struct Dag {
  std::vector<DagNode> nodes;
  // Every node once, each after all its dependencies; among the nodes that
  // are ready at the same time, file order first.
  std::vector<int> topo_order;
  std::vector<int> roots;   // no dependencies, ascending
  std::vector<int> leaves;  // no dependents, ascending
};

// Builds the DAG of `chain`. Fails (and sets *err) on an unknown dependency
// or a cycle; a chain that ParseChain accepted never fails.
bool BuildDag(const Chain& chain, Dag* dag, std::string* err);

// Marks `targets` and every task they depend on, directly or not: result[i] for node i. What a
// run limited to `targets` runs (chainctl run -f FILE TASK...). O(nodes + edges).
std::vector<bool> WithDependencies(const Dag& dag, const std::vector<int>& targets);

// Every cycle found by a depth-first search in node order, one per back
// edge, as node indices with the first repeated at the end: {a, b, a}.
// deps[i] lists the nodes that node i depends on. Self-loops are left out.
std::vector<std::vector<int>> FindCycles(const std::vector<std::vector<int>>& deps);

// "cycle: a -> b -> a".
std::string DescribeCycle(const std::vector<int>& cycle, const std::vector<std::string>& ids);

struct CriticalPath {
  std::vector<int> path;          // root to leaf, heaviest first
  double length = 0;              // sum of the path's weights
  std::vector<double> remaining;  // per node: its weight + the heaviest path after it
};

// Longest path by node weight (weights.size() == nodes.size(); use 1.0 for
// "by task count"). Ties go to the lower index.
CriticalPath ComputeCriticalPath(const Dag& dag, const std::vector<double>& weights);

// Checks the invariants above (edges mirrored, topo order complete and
// respecting every edge, roots and leaves exact). For tests.
bool VerifyDag(const Dag& dag, std::string* err);

}  // namespace chainctl
