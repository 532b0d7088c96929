#include "daemon/http/wire.h"

#include <gtest/gtest.h>

namespace chainctl::daemon {
namespace {

TEST(HttpWireTest, HeadWithLengthAndHeaders) {
  HttpResponse response;
  response.status = 201;
  response.headers = {{"X-Id", "7"}, {"content-length", "1"}, {"Connection", "close"}};
  response.body = "{}";
  EXPECT_EQ(ResponseHead(response, BodyFraming::kLength, ConnectionHeader::kNone),
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Id: 7\r\n"
            "Content-Length: 2\r\n\r\n");
}

TEST(HttpWireTest, HeadOfAStreamAndConnectionHeaders) {
  HttpResponse response;
  response.content_type = "";
  EXPECT_EQ(ResponseHead(response, BodyFraming::kChunked, ConnectionHeader::kClose),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ResponseHead(response, BodyFraming::kUntilClose, ConnectionHeader::kKeepAlive),
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n");
}

TEST(HttpWireTest, NoContentHasNoLength) {
  HttpResponse response;
  response.status = 204;
  response.content_type = "";
  EXPECT_EQ(ResponseHead(response, BodyFraming::kLength, ConnectionHeader::kNone),
            "HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_FALSE(StatusHasBody(304));
  EXPECT_TRUE(StatusHasBody(404));
}

TEST(HttpWireTest, CheckResponseRefusesWhatWouldBreakTheFraming) {
  std::string err;
  HttpResponse ok;
  ok.headers = {{"X-A", "b c"}};
  EXPECT_TRUE(CheckResponse(ok, &err));
  HttpResponse bad_status;
  bad_status.status = 101;
  EXPECT_FALSE(CheckResponse(bad_status, &err));
  HttpResponse bad_name;
  bad_name.headers = {{"X A", "b"}};
  EXPECT_FALSE(CheckResponse(bad_name, &err));
  EXPECT_NE(err.find("X A"), std::string::npos);
  HttpResponse bad_value;
  bad_value.headers = {{"X-A", "b\nSet-Cookie: c"}};
  EXPECT_FALSE(CheckResponse(bad_value, &err));
  HttpResponse bad_type;
  bad_type.content_type = "text/plain\r\nX: y";
  EXPECT_FALSE(CheckResponse(bad_type, &err));
}

TEST(HttpWireTest, ChunksAreHexSized) {
  EXPECT_EQ(Chunk("hello"), "5\r\nhello\r\n");
  EXPECT_EQ(Chunk(std::string(26, 'z')), "1a\r\n" + std::string(26, 'z') + "\r\n");
  EXPECT_EQ(HttpStatusReason(431), "Request Header Fields Too Large");
  EXPECT_EQ(HttpStatusReason(299), "Unknown");
}

}  // namespace
}  // namespace chainctl::daemon
