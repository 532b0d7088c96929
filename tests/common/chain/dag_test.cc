#include "common/chain/dag.h"

#include <gtest/gtest.h>

namespace chainctl {
namespace {

// A chain from "id:dep,dep" specs.
Chain MakeChain(const std::vector<std::string>& specs) {
  Chain chain;
  for (const std::string& spec : specs) {
    TaskSpec t;
    size_t colon = spec.find(':');
    t.task_id = spec.substr(0, colon);
    if (colon != std::string::npos) {
      std::string rest = spec.substr(colon + 1);
      for (size_t start = 0; start < rest.size();) {
        size_t comma = rest.find(',', start);
        if (comma == std::string::npos) comma = rest.size();
        t.dependencies.push_back(rest.substr(start, comma - start));
        start = comma + 1;
      }
    }
    chain.tasks.push_back(t);
  }
  return chain;
}

std::vector<std::string> Ids(const Dag& dag, const std::vector<int>& nodes) {
  std::vector<std::string> ids;
  for (int n : nodes) ids.push_back(dag.nodes[static_cast<size_t>(n)].id);
  return ids;
}

TEST(Dag, DiamondOrderRootsLeaves) {
  Dag dag;
  std::string err;
  ASSERT_TRUE(BuildDag(MakeChain({"load:t1,t2", "t2:extract", "t1:extract", "extract", "audit"}),
                       &dag, &err))
      << err;
  ASSERT_TRUE(VerifyDag(dag, &err)) << err;
  EXPECT_EQ(Ids(dag, dag.topo_order),
            (std::vector<std::string>{"extract", "t2", "t1", "load", "audit"}));
  EXPECT_EQ(Ids(dag, dag.roots), (std::vector<std::string>{"extract", "audit"}));
  EXPECT_EQ(Ids(dag, dag.leaves), (std::vector<std::string>{"load", "audit"}));
  EXPECT_EQ(Ids(dag, dag.nodes[3].dependents), (std::vector<std::string>{"t2", "t1"}));
}

TEST(Dag, CriticalPathFollowsWeights) {
  Dag dag;
  std::string err;
  ASSERT_TRUE(BuildDag(MakeChain({"a", "fast:a", "slow:a", "z:fast,slow"}), &dag, &err));
  CriticalPath cp = ComputeCriticalPath(dag, {1, 1, 5, 1});
  EXPECT_EQ(Ids(dag, cp.path), (std::vector<std::string>{"a", "slow", "z"}));
  EXPECT_DOUBLE_EQ(cp.length, 7);
  EXPECT_EQ(cp.remaining, (std::vector<double>{7, 2, 6, 1}));
  cp = ComputeCriticalPath(dag, {1, 9, 5, 1});
  EXPECT_EQ(Ids(dag, cp.path), (std::vector<std::string>{"a", "fast", "z"}));
  cp = ComputeCriticalPath(dag, {1, 1, 1, 1});  // tie: the lower index
  EXPECT_EQ(Ids(dag, cp.path), (std::vector<std::string>{"a", "fast", "z"}));
}

TEST(Dag, CyclesAreFoundWithTheirPath) {
  Dag dag;
  std::string err;
  EXPECT_FALSE(BuildDag(MakeChain({"a:c", "b:a", "c:b"}), &dag, &err));
  EXPECT_EQ(err, "cycle: a -> c -> b -> a");
  EXPECT_FALSE(BuildDag(MakeChain({"a:nope"}), &dag, &err));
  EXPECT_EQ(err, "task \"a\": bad dependency \"nope\"");
  EXPECT_FALSE(BuildDag(MakeChain({"a:a"}), &dag, &err));

  // One cycle per back edge; self-loops left out.
  auto cycles = FindCycles({{1}, {0, 2}, {2, 1}, {}});
  ASSERT_EQ(cycles.size(), 2u);
  EXPECT_EQ(cycles[0], (std::vector<int>{0, 1, 0}));
  EXPECT_EQ(cycles[1], (std::vector<int>{1, 2, 1}));
  EXPECT_TRUE(FindCycles({{}, {0}, {0, 1}}).empty());
}

TEST(Dag, LongChainsDoNotRecurse) {
  // 200,000 tasks in a line: a recursive search would overflow the stack.
  const int n = 200'000;
  std::vector<std::vector<int>> deps(n);
  for (int i = 1; i < n; ++i) deps[static_cast<size_t>(i)] = {i - 1};
  EXPECT_TRUE(FindCycles(deps).empty());
  deps[0] = {n - 1};
  auto cycles = FindCycles(deps);
  ASSERT_EQ(cycles.size(), 1u);
  EXPECT_EQ(cycles[0].size(), static_cast<size_t>(n) + 1);
}

TEST(Dag, VerifyDagCatchesBrokenInvariants) {
  Dag dag;
  std::string err;
  ASSERT_TRUE(BuildDag(MakeChain({"a", "b:a", "c:b"}), &dag, &err));
  ASSERT_TRUE(VerifyDag(dag, &err));

  Dag swapped = dag;
  std::swap(swapped.topo_order[0], swapped.topo_order[1]);
  EXPECT_FALSE(VerifyDag(swapped, &err));
  EXPECT_EQ(err, "b comes before its dependency a in topo_order");

  Dag unmirrored = dag;
  unmirrored.nodes[0].dependents.clear();
  EXPECT_FALSE(VerifyDag(unmirrored, &err));

  Dag short_order = dag;
  short_order.topo_order.pop_back();
  EXPECT_FALSE(VerifyDag(short_order, &err));

  Dag wrong_leaves = dag;
  wrong_leaves.leaves.push_back(0);
  EXPECT_FALSE(VerifyDag(wrong_leaves, &err));
  EXPECT_EQ(err, "leaves are not exactly the nodes without dependents");
}

TEST(Dag, DescribeCycle) { EXPECT_EQ(DescribeCycle({0, 1, 0}, {"a", "b"}), "cycle: a -> b -> a"); }

TEST(DagTest, WithDependenciesMarksTheTargetsAndAllTheyWaitFor) {
  Dag dag;
  std::string err;
  ASSERT_TRUE(BuildDag(MakeChain({"a", "b:a", "c:b", "d:a", "e:c,d", "x"}), &dag, &err)) << err;
  EXPECT_EQ(WithDependencies(dag, {2}),
            (std::vector<bool>{true, true, true, false, false, false}));  // c: b, a
  EXPECT_EQ(WithDependencies(dag, {4, 5}), (std::vector<bool>(6, true)));
  EXPECT_EQ(WithDependencies(dag, {}), (std::vector<bool>(6, false)));
}

}  // namespace
}  // namespace chainctl
