#include "common/predict/history_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/json_text.h"

namespace chainctl {
namespace {

using nlohmann::json;

constexpr unsigned kChunkBytes = 64 << 10;

bool Fail(std::string* err, std::string message) {
  *err = std::move(message);
  return false;
}

// An open gzip (or plain) file; closed on destruction unless Close was called.
class GzReader {
 public:
  // Opens `path` ("-": a duplicate of stdin, so closing it leaves stdin open).
  bool Open(const std::string& path, std::string* err) {
    int fd = path == "-" ? dup(STDIN_FILENO) : open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Fail(err, path + ": cannot open: " + std::strerror(errno));
    file_ = gzdopen(fd, "rb");
    if (file_ == nullptr) {
      close(fd);
      return Fail(err, path + ": cannot open: out of memory");
    }
    // gzerror's messages start with zlib's name of the file: "<fd:N>: ".
    prefix_ = "<fd:" + std::to_string(fd) + ">: ";
    return true;
  }

  ~GzReader() {
    if (file_ != nullptr) gzclose(file_);
  }

  // Reads up to `size` bytes into `buf`: the count, 0 at the end, -1 on an error.
  int Read(char* buf, unsigned size) { return gzread(file_, buf, size); }

  // The error of the stream after a read returned 0 or -1; "" if it just ended. A gzip stream
  // cut short reads as an end with Z_BUF_ERROR.
  std::string Error() {
    int errnum = Z_OK;
    const char* message = gzerror(file_, &errnum);
    if (errnum == Z_OK) return "";
    if (errnum == Z_BUF_ERROR) return "the gzip stream ends early (is the file truncated?)";
    std::string m = message;
    if (m.starts_with(prefix_)) m.erase(0, prefix_.size());
    return errnum == Z_ERRNO ? "cannot read: " + m : "gzip: " + m;
  }

  // Closes the file; false if zlib reports the stream unfinished.
  bool Close() {
    int ret = gzclose(file_);
    file_ = nullptr;
    return ret == Z_OK;
  }

 private:
  gzFile file_ = nullptr;
  std::string prefix_;
};

}  // namespace

bool IsBlankHistoryLine(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

bool ParseHistoryLine(std::string_view line, HistoryRecord* record, std::string* err) {
  json j;
  JsonTextFault fault = JsonTextFault::kNone;
  std::string why;
  if (!DecodeJsonText(line, &j, &fault, &why)) return Fail(err, why);
  return FromJsonlV1(j, record, err);
}

bool ReadHistoryFile(const std::string& path, const HistoryRecordSink& each, std::string* err) {
  GzReader file;
  if (!file.Open(path, err)) return false;
  size_t line = 1;
  auto fail_at = [&](const std::string& message) {
    return Fail(err, path + ":" + std::to_string(line) + ": " + message);
  };
  auto take = [&](std::string_view text) {
    if (IsBlankHistoryLine(text)) return true;
    HistoryRecord record;
    std::string why;
    if (!ParseHistoryLine(text, &record, &why) || !each(std::move(record), &why)) {
      return fail_at(why);
    }
    return true;
  };
  auto too_long = [&] {
    return fail_at("the line is longer than " + std::to_string(kMaxHistoryLineBytes) + " bytes");
  };
  std::string buf(kChunkBytes, '\0');
  std::string pending;  // the start of the current line, when it spans chunks
  for (;;) {
    int n = file.Read(buf.data(), kChunkBytes);
    if (n <= 0) break;
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    while (!chunk.empty()) {
      size_t newline = chunk.find('\n');
      std::string_view part = chunk.substr(0, newline);
      if (pending.size() + part.size() > kMaxHistoryLineBytes) return too_long();
      if (newline == std::string_view::npos) {
        pending.append(part);
        break;
      }
      if (pending.empty()) {
        if (!take(part)) return false;
      } else {
        pending.append(part);
        if (!take(pending)) return false;
        pending.clear();
      }
      ++line;
      chunk.remove_prefix(newline + 1);
    }
  }
  if (std::string error = file.Error(); !error.empty()) return fail_at(error);
  if (!pending.empty() && !take(pending)) return false;  // a last line without a newline
  if (!file.Close()) return fail_at("the gzip stream ends early (is the file truncated?)");
  return true;
}

bool LoadHistoryFile(const std::string& path, std::vector<HistoryRecord>* out, std::string* err) {
  out->clear();
  return ReadHistoryFile(
      path,
      [out](HistoryRecord&& record, std::string*) {
        out->push_back(std::move(record));
        return true;
      },
      err);
}

}  // namespace chainctl
