#include "common/chain/graph_render.h"

#include <gtest/gtest.h>

#include "common/chain/load.h"

namespace chainctl {
namespace {

class GraphRender : public ::testing::Test {
 protected:
  void SetUp() override {
    LoadOptions options;
    options.check_executables = false;
    Diagnostics diags;
    auto chain = ParseChain(R"(
chain_id: etl
tasks:
  - {task_id: extract, command: x}
  - {task_id: clean, command: x, dependencies: [extract]}
  - {task_id: say.hi, command: x, dependencies: [extract]}
  - task_id: load
    command: x
    dependencies: [clean]
    when: {path: /clean/n, op: gt, value: 0}
)",
                            "etl.yaml", options, &diags);
    ASSERT_TRUE(chain) << FormatDiagnostic(diags.at(0));
    chain_ = *chain;
    std::string err;
    ASSERT_TRUE(BuildDag(chain_, &dag_, &err)) << err;
  }
  Chain chain_;
  Dag dag_;
};

TEST_F(GraphRender, Text) {
  EXPECT_EQ(RenderGraph(chain_, dag_, "etl", GraphFormat::kText),
            "etl: 4 tasks, 1 root, 2 leaves\n"
            "* extract\n"
            "* clean    <- extract\n"
            "  say.hi   <- extract\n"
            "* load     <- clean  (conditional)\n"
            "(* critical path)\n");
}

TEST_F(GraphRender, DotQuotesEverything) {
  std::string dot = RenderGraph(chain_, dag_, "my \"etl\"", GraphFormat::kDot);
  EXPECT_TRUE(dot.starts_with("digraph \"my \\\"etl\\\"\" {\n")) << dot;
  EXPECT_NE(dot.find("  \"extract\" -> \"say.hi\";\n"), std::string::npos) << dot;
  EXPECT_NE(dot.find("  \"extract\" -> \"clean\" [penwidth=2];\n"), std::string::npos) << dot;
  EXPECT_NE(dot.find("  \"load\" [penwidth=2, style=\"rounded,dashed\"];\n"), std::string::npos)
      << dot;
  EXPECT_TRUE(dot.ends_with("}\n"));
}

TEST_F(GraphRender, Mermaid) {
  EXPECT_EQ(RenderGraph(chain_, dag_, "etl", GraphFormat::kMermaid),
            "flowchart LR\n"
            "  n0[\"extract\"]\n"
            "  n1[\"clean\"]\n"
            "  n2[\"say.hi\"]\n"
            "  n3[\"load\"]\n"
            "  n0 --> n1\n"
            "  n0 --> n2\n"
            "  n1 --> n3\n"
            "  style n0 stroke-width:3px\n"
            "  style n1 stroke-width:3px\n"
            "  style n3 stroke-width:3px\n"
            "  linkStyle 0 stroke-width:3px\n"
            "  linkStyle 2 stroke-width:3px\n");
}

TEST(GraphFormatNames, Parse) {
  EXPECT_EQ(ParseGraphFormat("dot"), GraphFormat::kDot);
  EXPECT_EQ(ParseGraphFormat("mermaid"), GraphFormat::kMermaid);
  EXPECT_EQ(ParseGraphFormat("text"), GraphFormat::kText);
  EXPECT_FALSE(ParseGraphFormat("svg"));
}

}  // namespace
}  // namespace chainctl
