#include "common/json_text.h"

#include <algorithm>

namespace chainctl {
namespace {

using nlohmann::json;

// The length of the well-formed UTF-8 sequence starting at text[i] (RFC 3629, table 3-7 of
// the Unicode standard), or 0 if none starts there.
size_t SequenceLength(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // no overlong forms
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // no overlong forms
    if (lead == 0xF4) high = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;  // 0x80..0xC1 (a continuation or an overlong lead), 0xF5..0xFF
  }
  if (text.size() - i < length) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return length;
}

std::string Hex(unsigned char c) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return std::string("0x") + kDigits[c >> 4] + kDigits[c & 0xF];
}

// A SAX handler that builds nothing and keeps nlohmann's reason for the first error.
struct ReasonSax {
  std::string reason;
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t&) { return true; }
  bool string(json::string_t&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool start_object(size_t) { return true; }
  bool key(json::string_t&) { return true; }
  bool end_object() { return true; }
  bool start_array(size_t) { return true; }
  bool end_array() { return true; }
  bool parse_error(size_t position, const std::string&, const json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ...":
    // the part after the position (the byte is given instead).
    std::string what = e.what();
    size_t bracket = what.find("] ");
    if (bracket != std::string::npos) what.erase(0, bracket + 2);
    size_t at = what.find("parse error at line");
    size_t colon = at == std::string::npos ? std::string::npos : what.find(": ", at);
    if (colon != std::string::npos) what.erase(0, colon + 2);
    reason = "not JSON (byte " + std::to_string(position) + "): " + what;
    return false;
  }
};

// nlohmann's reason why `text` (UTF-8, not too deep) is not JSON. Parses without building.
std::string NotJsonReason(std::string_view text) {
  ReasonSax sax;
  if (json::sax_parse(text.begin(), text.end(), &sax) || sax.reason.empty()) {
    return "not JSON";  // cannot happen: json::parse refused it
  }
  return sax.reason;
}

}  // namespace

std::optional<size_t> FindInvalidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t length = SequenceLength(text, i);
    if (length == 0) return i;
    i += length;
  }
  return std::nullopt;
}

size_t JsonNestingDepth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string PrintableBytes(std::string_view bytes, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    size_t length = SequenceLength(bytes, i);
    if (i + std::max<size_t>(length, 1) > max_bytes) break;
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (length > 1 || (length == 1 && c >= 0x20 && c != 0x7F)) {
      out.append(bytes.substr(i, length));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += "\\x" + Hex(c).substr(2);
    }
    i += std::max<size_t>(length, 1);
  }
  if (i < bytes.size()) out += "...";
  return out;
}

bool DecodeJsonText(std::string_view text, json* value, JsonTextFault* fault, std::string* err,
                    int max_depth) {
  *fault = JsonTextFault::kNone;
  if (std::optional<size_t> bad = FindInvalidUtf8(text)) {
    *fault = JsonTextFault::kNotUtf8;
    *err = "not valid UTF-8 at byte " + std::to_string(*bad + 1) + " (" +
           Hex(static_cast<unsigned char>(text[*bad])) + ")";
    return false;
  }
  // The depth is known before a value is built; json::accept builds nothing (and, like
  // nlohmann's parser, does not recurse), so text too deep is still told apart from non-JSON.
  if (JsonNestingDepth(text) > static_cast<size_t>(std::max(max_depth, 0))) {
    bool is_json = json::accept(text.begin(), text.end());
    *fault = is_json ? JsonTextFault::kTooDeep : JsonTextFault::kNotJson;
    *err = is_json ? "nests deeper than " + std::to_string(max_depth) + " levels"
                   : NotJsonReason(text);
    return false;
  }
  json parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    *fault = JsonTextFault::kNotJson;
    *err = NotJsonReason(text);
    return false;
  }
  *value = std::move(parsed);
  return true;
}

}  // namespace chainctl
