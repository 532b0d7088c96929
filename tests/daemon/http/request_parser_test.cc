#include "daemon/http/request_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace chainctl::daemon {
namespace {

using Result = HttpRequestParser::Result;

class HttpRequestParserTest : public ::testing::Test {
 protected:
  // Parses all of `input`, one byte per call if `bytewise`; returns the last result.
  Result ParseAll(std::string_view input, bool bytewise = false) {
    Result result = Result::kNeedMore;
    while (!input.empty()) {
      size_t used = 0;
      result = parser_.Parse(input.substr(0, bytewise ? 1 : input.size()), &used);
      input.remove_prefix(used);
      if (result != Result::kNeedMore) break;
    }
    consumed_rest_ = input.size();
    return result;
  }

  HttpLimits limits_;
  HttpRequestParser parser_{&limits_};
  size_t consumed_rest_ = 0;
};

TEST_F(HttpRequestParserTest, SplitsTargetAndLowersHeaderNames) {
  ASSERT_EQ(ParseAll("PUT /a/b%20c?x=1&y HTTP/1.1\r\nX-Mixed-Case:  v  \r\nHost: h\r\n"
                     "Content-Length: 2\r\n\r\nhi"),
            Result::kRequest);
  HttpRequest request = parser_.TakeRequest();
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.path, "/a/b%20c");
  EXPECT_EQ(request.query, "x=1&y");
  ASSERT_NE(request.Header("x-mixed-case"), nullptr);
  EXPECT_EQ(*request.Header("x-mixed-case"), "v");
  EXPECT_EQ(request.Header("X-Mixed-Case"), nullptr) << "lookups take lower-case names";
  EXPECT_EQ(request.body, "hi");
  EXPECT_TRUE(parser_.keep_alive());
  EXPECT_FALSE(parser_.in_request());
}

TEST_F(HttpRequestParserTest, SameRequestByteByByte) {
  ASSERT_EQ(ParseAll("POST /x?q HTTP/1.1\r\nTransfer-Encoding: chunked\r\nA: 1\r\n\r\n"
                     "3\r\nabc\r\n0\r\n\r\n",
                     /*bytewise=*/true),
            Result::kRequest);
  HttpRequest request = parser_.TakeRequest();
  EXPECT_EQ(request.path, "/x");
  EXPECT_EQ(request.body, "abc");
  ASSERT_EQ(request.headers.size(), 2u);
  EXPECT_EQ(request.headers[1], (std::pair<std::string, std::string>("a", "1")));
}

TEST_F(HttpRequestParserTest, StopsAfterEachPipelinedRequest) {
  std::string input = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3";
  size_t used = 0;
  ASSERT_EQ(parser_.Parse(input, &used), Result::kRequest);
  EXPECT_EQ(parser_.TakeRequest().path, "/1");
  input.erase(0, used);
  ASSERT_EQ(parser_.Parse(input, &used), Result::kRequest);
  EXPECT_EQ(parser_.TakeRequest().path, "/2");
  input.erase(0, used);
  EXPECT_EQ(parser_.Parse(input, &used), Result::kNeedMore);
  EXPECT_EQ(used, input.size());
  EXPECT_TRUE(parser_.in_request());
}

TEST_F(HttpRequestParserTest, AbsoluteFormTargetGivesItsPath) {
  ASSERT_EQ(ParseAll("GET http://localhost/chains?all HTTP/1.1\r\n\r\n"), Result::kRequest);
  HttpRequest request = parser_.TakeRequest();
  EXPECT_EQ(request.path, "/chains");
  EXPECT_EQ(request.query, "all");
}

TEST_F(HttpRequestParserTest, HeaderLimitIsExact) {
  limits_.max_header_bytes = 64;
  std::string head = "GET / HTTP/1.1\r\nX: ";
  std::string at_limit = head + std::string(64 - head.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(at_limit.size(), 64u);
  EXPECT_EQ(ParseAll(at_limit), Result::kRequest);
  parser_.TakeRequest();
  EXPECT_EQ(ParseAll(head + std::string(64 - head.size() - 3, 'a') + "\r\n\r\n"), Result::kError);
  EXPECT_EQ(parser_.error().status, 431);
  EXPECT_EQ(consumed_rest_, 1u) << "no byte past the limit is parsed";
}

TEST_F(HttpRequestParserTest, HeaderLimitCountsEachRequestAfresh) {
  limits_.max_header_bytes = 40;
  std::string one = "GET /aaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n";  // 39 bytes
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(ParseAll(one), Result::kRequest) << i;
    parser_.TakeRequest();
  }
}

TEST_F(HttpRequestParserTest, AnnouncedBodyOverTheLimitFailsAtTheHeaders) {
  limits_.max_body_bytes = 10;
  EXPECT_EQ(ParseAll("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"), Result::kError);
  EXPECT_EQ(parser_.error().status, 413);
  size_t used = 7;
  EXPECT_EQ(parser_.Parse("more", &used), Result::kError) << "stays failed";
  EXPECT_EQ(used, 0u);
}

TEST_F(HttpRequestParserTest, ChunkedBodyOverTheLimitFails) {
  limits_.max_body_bytes = 4;
  EXPECT_EQ(ParseAll("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
                     "2\r\nde\r\n0\r\n\r\n"),
            Result::kError);
  EXPECT_EQ(parser_.error().status, 413);
}

TEST_F(HttpRequestParserTest, MalformedInputIs400WithTheParserReason) {
  EXPECT_EQ(ParseAll("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), Result::kError);
  EXPECT_EQ(parser_.error().status, 400);
  EXPECT_NE(parser_.error().body.find("HPE_INVALID_CONTENT_LENGTH"), std::string::npos);
}

TEST_F(HttpRequestParserTest, ConnectIsRefused) {
  EXPECT_EQ(ParseAll("CONNECT example.org:443 HTTP/1.1\r\n\r\n"), Result::kError);
  EXPECT_EQ(parser_.error().status, 405);
}

TEST_F(HttpRequestParserTest, UpgradeRequestIsAnOrdinaryRequest) {
  ASSERT_EQ(ParseAll("GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
                     "GET /next HTTP/1.1\r\n\r\n"),
            Result::kRequest);
  EXPECT_EQ(parser_.TakeRequest().path, "/ws");
  ASSERT_EQ(ParseAll("GET /next HTTP/1.1\r\n\r\n"), Result::kRequest);
}

TEST_F(HttpRequestParserTest, ReportsKeepAliveVersionAndHead) {
  ASSERT_EQ(ParseAll("HEAD / HTTP/1.0\r\n\r\n"), Result::kRequest);
  parser_.TakeRequest();
  EXPECT_FALSE(parser_.keep_alive());
  EXPECT_TRUE(parser_.http_1_0());
  EXPECT_TRUE(parser_.head());
}

TEST_F(HttpRequestParserTest, ExpectContinueOnlyWithABody) {
  EXPECT_EQ(ParseAll("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"),
            Result::kNeedMore);
  EXPECT_TRUE(parser_.TakeExpectContinue());
  EXPECT_FALSE(parser_.TakeExpectContinue()) << "once";
  EXPECT_EQ(ParseAll("abc"), Result::kRequest);
  parser_.TakeRequest();
  EXPECT_EQ(ParseAll("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"), Result::kRequest);
  EXPECT_FALSE(parser_.TakeExpectContinue());
}

// Every request of `input`, fed in pieces that end at `cuts`.
std::vector<HttpRequest> ParsePieces(std::string_view input, const std::vector<size_t>& cuts) {
  HttpLimits limits;
  HttpRequestParser parser(&limits);
  std::vector<HttpRequest> requests;
  std::string pending;
  size_t from = 0;
  for (size_t cut : cuts) {
    pending.append(input.substr(from, cut - from));
    from = cut;
    size_t used = 0;
    for (;;) {
      Result result = parser.Parse(pending, &used);
      pending.erase(0, used);
      if (result != Result::kRequest) break;
      requests.push_back(parser.TakeRequest());
    }
  }
  return requests;
}

TEST(HttpRequestParserSplitTest, SplitAnywhereGivesTheSameRequests) {
  std::string input =
      "POST /a?x HTTP/1.1\r\nContent-Length: 5\r\nX-Y:  z \r\n\r\nhello"
      "PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n"
      "\r\nGET /c HTTP/1.1\r\n\r\n";
  std::vector<HttpRequest> whole = ParsePieces(input, {input.size()});
  ASSERT_EQ(whole.size(), 3u);
  EXPECT_EQ(whole[1].body, "abcd");
  for (size_t a = 0; a <= input.size(); ++a) {
    for (size_t b = a; b <= input.size(); b += 7) {
      std::vector<HttpRequest> pieces = ParsePieces(input, {a, b, input.size()});
      ASSERT_EQ(pieces.size(), 3u) << a << " " << b;
      for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(pieces[i].method, whole[i].method);
        EXPECT_EQ(pieces[i].path, whole[i].path);
        EXPECT_EQ(pieces[i].query, whole[i].query);
        EXPECT_EQ(pieces[i].headers, whole[i].headers);
        EXPECT_EQ(pieces[i].body, whole[i].body);
      }
    }
  }
}

// Mutated requests never crash the parser nor make it loop: it always answers.
TEST(HttpRequestParserSplitTest, SurvivesMutatedInput) {
  const std::string seed =
      "POST /a?x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.0\r\n\r\n";
  std::mt19937 random(20240601);
  HttpLimits limits;
  limits.max_header_bytes = 64;
  limits.max_body_bytes = 8;
  for (int round = 0; round < 2000; ++round) {
    std::string input = seed;
    for (int m = 0; m < 4; ++m) {
      input[random() % input.size()] = static_cast<char>(random() % 256);
    }
    HttpRequestParser parser(&limits);
    std::string_view rest = input;
    for (int steps = 0; !rest.empty(); ++steps) {
      ASSERT_LT(steps, 100) << "the parser does not progress";
      size_t used = 0;
      Result result = parser.Parse(rest.substr(0, 1 + random() % rest.size()), &used);
      rest.remove_prefix(used);
      if (result == Result::kError) {
        EXPECT_GE(parser.error().status, 400);
        break;
      }
      if (result == Result::kRequest) parser.TakeRequest();
    }
  }
}

}  // namespace
}  // namespace chainctl::daemon
