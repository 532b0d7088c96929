#include "daemon/run/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace chainctl::daemon {
namespace {

// A chain from "id:dep,dep" strings, its DAG, and a scheduler on it.
struct Plan {
  Chain chain;
  Dag dag;
  std::unique_ptr<Scheduler> scheduler;

  Plan(std::vector<std::string> specs, std::map<std::string, double> weights = {},
       std::map<std::string, TriggerRule> rules = {}) {
    for (const std::string& spec : specs) {
      TaskSpec t;
      size_t colon = spec.find(':');
      t.task_id = spec.substr(0, colon);
      if (colon != std::string::npos) {
        std::string deps = spec.substr(colon + 1);
        for (size_t start = 0; start <= deps.size();) {
          size_t comma = std::min(deps.find(',', start), deps.size());
          t.dependencies.push_back(deps.substr(start, comma - start));
          start = comma + 1;
        }
      }
      if (rules.count(t.task_id)) t.trigger_rule = rules[t.task_id];
      chain.tasks.push_back(t);
    }
    std::string err;
    EXPECT_TRUE(BuildDag(chain, &dag, &err)) << err;
    std::vector<double> w;
    std::vector<TriggerRule> r;
    for (const TaskSpec& t : chain.tasks) {
      w.push_back(weights.count(t.task_id) ? weights[t.task_id] : 1.0);
      r.push_back(t.trigger_rule);
    }
    scheduler = std::make_unique<Scheduler>(dag, w, r);
  }

  int Id(const std::string& id) const { return chain.FindTask(id); }
  std::string Name(int i) const { return chain.tasks[static_cast<size_t>(i)].task_id; }
  std::vector<std::string> Names(const std::vector<int>& tasks) const {
    std::vector<std::string> out;
    for (int t : tasks) out.push_back(Name(t));
    return out;
  }
  std::vector<std::string> TakeReady() { return Names(scheduler->TakeReady()); }
  std::string State(const std::string& id) const { return ToString(scheduler->state(Id(id))); }
  void Start(const std::string& id) { scheduler->Started(Id(id)); }
  void Finish(const std::string& id, TaskState outcome) { scheduler->Finished(Id(id), outcome); }
  void Run(const std::string& id, TaskState outcome = TaskState::kSucceeded) {
    Start(id);
    Finish(id, outcome);
  }
};

// A fake runner: runs every ready task at once, with outcomes from a table (default success),
// and records the order in which tasks were started.
std::vector<std::string> RunAll(Plan& plan, std::map<std::string, TaskState> outcomes = {}) {
  std::vector<std::string> order;
  for (int guard = 0; guard < 1000 && !plan.scheduler->Done(); ++guard) {
    std::vector<std::string> ready = plan.TakeReady();
    if (ready.empty()) break;
    for (const std::string& id : ready) plan.Start(id);
    for (const std::string& id : ready) {
      order.push_back(id);
      plan.Finish(id, outcomes.count(id) ? outcomes[id] : TaskState::kSucceeded);
    }
  }
  return order;
}

using S = TaskState;
using Names = std::vector<std::string>;

TEST(Scheduler, StateNamesRoundTrip) {
  for (S s : {S::kPending, S::kReady, S::kRunning, S::kSucceeded, S::kFailed, S::kSkipped,
              S::kUpstreamFailed, S::kCancelled}) {
    EXPECT_EQ(ParseTaskState(ToString(s)), s);
  }
  EXPECT_FALSE(ParseTaskState("done"));
  EXPECT_FALSE(IsFinal(S::kRunning));
  EXPECT_TRUE(IsFinal(S::kUpstreamFailed));
}

TEST(Scheduler, LinearChainRunsInOrder) {
  Plan p({"a", "b:a", "c:b"});
  EXPECT_EQ(RunAll(p), (Names{"a", "b", "c"}));
  EXPECT_TRUE(p.scheduler->Done());
  EXPECT_TRUE(p.scheduler->Succeeded());
}

TEST(Scheduler, DiamondWaitsForBothBranches) {
  Plan p({"src", "left:src", "right:src", "join:left,right"});
  EXPECT_EQ(p.TakeReady(), (Names{"src"}));
  p.Run("src");
  EXPECT_EQ(p.TakeReady(), (Names{"left", "right"}));
  p.Start("left");
  p.Start("right");
  p.Finish("left", S::kSucceeded);
  EXPECT_TRUE(p.TakeReady().empty()) << "join must wait for right";
  EXPECT_EQ(p.State("join"), "pending");
  p.Finish("right", S::kSucceeded);
  EXPECT_EQ(p.TakeReady(), (Names{"join"}));
}

TEST(Scheduler, ReadyTasksComeOutLongestPathFirst) {
  // short is a leaf; long heads a heavier path; ties keep file order.
  Plan p({"short", "long", "after:long", "tie1", "tie2"}, {{"long", 1}, {"after", 10}});
  EXPECT_EQ(p.TakeReady(), (Names{"long", "short", "tie1", "tie2"}));
  EXPECT_DOUBLE_EQ(p.scheduler->Priority(p.Id("long")), 11);
}

TEST(Scheduler, EachReadyTaskIsGivenOnce) {
  Plan p({"a", "b"});
  EXPECT_EQ(p.TakeReady().size(), 2u);
  EXPECT_TRUE(p.TakeReady().empty());
}

TEST(Scheduler, FailureStopsDependentsAndFailsTheRun) {
  Plan p({"a", "b:a", "c:b", "other"});
  RunAll(p, {{"a", S::kFailed}});
  EXPECT_EQ(p.State("b"), "upstream_failed");
  EXPECT_EQ(p.State("c"), "upstream_failed");
  EXPECT_EQ(p.State("other"), "succeeded");
  EXPECT_TRUE(p.scheduler->Done());
  EXPECT_FALSE(p.scheduler->Succeeded());
}

TEST(Scheduler, DecidedListsWhatFollowedFromAnOutcome) {
  Plan p({"a", "b:a", "c:b"});
  p.TakeReady();
  p.Run("a", S::kFailed);
  EXPECT_EQ(p.Names(p.scheduler->decided()), (Names{"b", "c"}));
}

TEST(Scheduler, SkippedTaskSkipsAllSuccessDependents) {
  Plan p({"router", "branch:router", "after:branch"});
  p.Run("router");
  EXPECT_EQ(p.TakeReady(), (Names{"branch"}));
  p.Finish("branch", S::kSkipped);  // `when` false: skipped without starting
  EXPECT_EQ(p.State("after"), "skipped");
  EXPECT_TRUE(p.scheduler->Succeeded()) << "skipping is not failing";
}

TEST(Scheduler, AllDoneRunsAfterFailureToo) {
  Plan p({"a", "cleanup:a"}, {}, {{"cleanup", TriggerRule::kAllDone}});
  EXPECT_EQ(RunAll(p, {{"a", S::kFailed}}), (Names{"a", "cleanup"}));
  EXPECT_EQ(p.State("cleanup"), "succeeded");
  EXPECT_FALSE(p.scheduler->Succeeded()) << "a failed";
}

TEST(Scheduler, OneSuccessStartsOnTheFirstSuccess) {
  Plan p({"x", "y", "any:x,y"}, {}, {{"any", TriggerRule::kOneSuccess}});
  p.TakeReady();
  p.Start("x");
  p.Start("y");
  p.Finish("x", S::kSucceeded);
  EXPECT_EQ(p.TakeReady(), (Names{"any"}));
}

TEST(Scheduler, OneSuccessWithNoSuccess) {
  Plan failed({"x", "y", "any:x,y"}, {}, {{"any", TriggerRule::kOneSuccess}});
  RunAll(failed, {{"x", S::kFailed}, {"y", S::kSkipped}});
  EXPECT_EQ(failed.State("any"), "upstream_failed");
  Plan skipped({"x", "y", "any:x,y"}, {}, {{"any", TriggerRule::kOneSuccess}});
  RunAll(skipped, {{"x", S::kSkipped}, {"y", S::kSkipped}});
  EXPECT_EQ(skipped.State("any"), "skipped");
}

TEST(Scheduler, CancelPendingLeavesRunningTasksToTheCaller) {
  Plan p({"a", "b", "c:a"});
  p.TakeReady();
  p.Start("a");
  std::vector<int> cancelled = p.scheduler->CancelPending();
  EXPECT_EQ(p.Names(cancelled), (Names{"b", "c"}));
  EXPECT_EQ(p.State("a"), "running");
  EXPECT_FALSE(p.scheduler->Done());
  p.Finish("a", S::kCancelled);
  EXPECT_TRUE(p.scheduler->Done());
  EXPECT_FALSE(p.scheduler->Succeeded());
}

TEST(Scheduler, RestoreRerunsWhatDidNotSucceed) {
  Plan p({"a", "b:a", "c:b", "d:a"});
  RunAll(p, {{"b", S::kFailed}});
  ASSERT_EQ(p.State("c"), "upstream_failed");
  p.scheduler->Restore(p.scheduler->states());
  EXPECT_EQ(p.State("a"), "succeeded");
  EXPECT_EQ(p.State("d"), "succeeded");
  EXPECT_EQ(RunAll(p), (Names{"b", "c"}));
  EXPECT_TRUE(p.scheduler->Succeeded());
}

TEST(Scheduler, LargeFanOutAndFanIn) {
  std::vector<std::string> specs = {"root"};
  std::string all;
  for (int i = 0; i < 500; ++i) {
    specs.push_back("t" + std::to_string(i) + ":root");
    all += (i ? "," : "") + std::string("t") + std::to_string(i);
  }
  specs.push_back("sink:" + all);
  Plan p(specs);
  std::vector<std::string> order = RunAll(p);
  ASSERT_EQ(order.size(), 502u);
  EXPECT_EQ(order.front(), "root");
  EXPECT_EQ(order.back(), "sink");
  EXPECT_TRUE(p.scheduler->Succeeded());
}

}  // namespace
}  // namespace chainctl::daemon
