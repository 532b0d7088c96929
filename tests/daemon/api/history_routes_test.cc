// POST /history through Api::Handle, with a real store and loop (no server, no orchestrator:
// the history endpoints use neither).
#include <gtest/gtest.h>
#include <uv.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/api/api.h"
#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

std::string Line(const std::string& run, const std::string& task, int start) {
  return json({{"run_id", run},
               {"chain_id", "c"},
               {"task_id", task},
               {"start", start},
               {"end", start + 1},
               {"status", "succeeded"}})
             .dump() +
         "\n";
}

class ApiHistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    std::string err;
    store_ = Store::Open({.dir = tmp_.path() + "/store"}, &err);
    ASSERT_TRUE(store_) << err;
    history_ = std::make_unique<History>(store_.get());
    ApiContext context;
    context.loop = &loop_;
    context.history = history_.get();
    context.on_history_appended = [this](const std::vector<HistoryRecord>& records) {
      hook_calls_.push_back(records);
    };
    api_ = std::make_unique<Api>(std::move(context));
  }

  void TearDown() override { EXPECT_EQ(uv_loop_close(&loop_), 0); }

  // POSTs `body` to /history and runs the loop until the answer.
  HttpResponse Post(std::string body, const char* content_type = "application/x-ndjson") {
    HttpRequest request;
    request.method = "POST";
    request.path = "/history";
    if (content_type) request.headers.emplace_back("content-type", content_type);
    request.body = std::move(body);
    std::optional<HttpResponse> answer;
    api_->Handle(std::move(request), [&answer](HttpResponse r) { answer = std::move(r); });
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_TRUE(answer.has_value());
    return answer.value_or(HttpResponse{});
  }

  uint64_t Count() {
    uint64_t count = 0;
    std::string err;
    EXPECT_TRUE(history_->Count(&count, &err)) << err;
    return count;
  }

  uv_loop_t loop_;
  testing::ScopedTempDir tmp_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<History> history_;
  std::unique_ptr<Api> api_;
  std::vector<std::vector<HistoryRecord>> hook_calls_;
};

TEST_F(ApiHistoryTest, ImportsAllAndTellsTheHook) {
  HttpResponse r = Post(Line("r1", "a", 1) + "\r\n" + Line("r1", "b", 2) + Line("r2", "a", 3));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body),
            json::parse(R"({"imported":3,"skipped":0,"first_seq":1,"last_seq":3})"));
  EXPECT_EQ(Count(), 3u);
  ASSERT_EQ(hook_calls_.size(), 1u);
  ASSERT_EQ(hook_calls_[0].size(), 3u);
  EXPECT_EQ(hook_calls_[0][1].task_id, "b");
  EXPECT_EQ(hook_calls_[0][1].seq, 2u);
  EXPECT_EQ(hook_calls_[0][2].start_unix_ms, 3000);

  r = Post(Line("r3", "a", 4), nullptr);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body),
            json::parse(R"({"imported":1,"skipped":0,"first_seq":4,"last_seq":4})"));
  EXPECT_EQ(hook_calls_.size(), 2u);
}

TEST_F(ApiHistoryTest, ImportingAgainStoresNothingTwice) {
  const std::string body = Line("r1", "a", 1) + Line("r1", "b", 2) + Line("r2", "a", 3);
  ASSERT_EQ(Post(body).status, 200);
  HttpResponse r = Post(body);  // an import run again, e.g. after a kill
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"imported":0,"skipped":3})"));
  EXPECT_EQ(Count(), 3u);
  EXPECT_EQ(hook_calls_.size(), 1u);  // the model is not fed the same records again

  // One stored, one new, the new one twice in the body: only the new one, once.
  r = Post(Line("r2", "a", 3) + Line("r2", "b", 4) + Line("r2", "b", 4));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body),
            json::parse(R"({"imported":1,"skipped":2,"first_seq":4,"last_seq":4})"));
  ASSERT_EQ(hook_calls_.size(), 2u);
  ASSERT_EQ(hook_calls_[1].size(), 1u);
  EXPECT_EQ(hook_calls_[1][0].task_id, "b");
  EXPECT_EQ(Count(), 4u);
}

TEST_F(ApiHistoryTest, ABadLineImportsNothing) {
  std::string body = Line("r", "a", 1) + "\n" + "{\"run_id\": 1}\n" + Line("r", "b", 2) + "[]";
  HttpResponse r = Post(body);
  EXPECT_EQ(r.status, 422);
  json error = json::parse(r.body)["error"];
  EXPECT_EQ(error["code"], "invalid_history");
  EXPECT_EQ(error["message"], "line 3: field \"run_id\" must be a string (2 invalid lines)");
  ASSERT_EQ(error["details"].size(), 2u);
  EXPECT_EQ(error["details"][0]["line"], 3);
  EXPECT_EQ(error["details"][1]["line"], 5);
  EXPECT_EQ(error["details"][1]["message"], "a history record must be a JSON object");
  EXPECT_EQ(Count(), 0u);
  EXPECT_TRUE(hook_calls_.empty());
}

TEST_F(ApiHistoryTest, ListsAtMostTwentyBadLines) {
  std::string body;
  for (int i = 0; i < 50; ++i) body += "x\n";
  HttpResponse r = Post(body);
  EXPECT_EQ(r.status, 422);
  json error = json::parse(r.body)["error"];
  EXPECT_EQ(error["details"].size(), 20u);
  EXPECT_NE(error["message"].get<std::string>().find("(50 invalid lines)"), std::string::npos);
}

TEST_F(ApiHistoryTest, EmptyBodyImportsNothing) {
  HttpResponse r = Post("\n  \n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"imported":0,"skipped":0})"));
  EXPECT_TRUE(hook_calls_.empty());
}

TEST_F(ApiHistoryTest, OtherContentTypesAre415) {
  HttpResponse r = Post(Line("r", "a", 1), "application/json");
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "unsupported_media_type");
  EXPECT_EQ(Post(Line("r", "a", 1), "application/jsonl; charset=utf-8").status, 200);
  EXPECT_EQ(Count(), 1u);
}

}  // namespace
}  // namespace chainctl::daemon
