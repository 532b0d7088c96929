#include "common/json_pointer.h"

#include <algorithm>
#include <cctype>

namespace chainctl {

std::optional<std::vector<std::string>> SplitJsonPointer(std::string_view pointer,
                                                         std::string* err) {
  std::vector<std::string> tokens;
  if (pointer.empty()) return tokens;
  if (pointer[0] != '/') {
    *err = "a JSON Pointer must be empty or start with '/'";
    return std::nullopt;
  }
  std::string token;
  for (size_t i = 1; i <= pointer.size(); ++i) {
    if (i == pointer.size() || pointer[i] == '/') {
      tokens.push_back(std::move(token));
      token.clear();
    } else if (pointer[i] == '~') {
      char next = i + 1 < pointer.size() ? pointer[i + 1] : '\0';
      if (next != '0' && next != '1') {
        *err = "'~' in a JSON Pointer must be followed by 0 or 1";
        return std::nullopt;
      }
      token += next == '0' ? '~' : '/';
      ++i;
    } else {
      token += pointer[i];
    }
  }
  return tokens;
}

std::string EscapePointerToken(std::string_view token) {
  std::string out;
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string PointerToFieldPath(std::string_view pointer, const nlohmann::json* root) {
  std::string err;
  auto tokens = SplitJsonPointer(pointer, &err);
  if (!tokens) return std::string(pointer);
  std::string out;
  const nlohmann::json* node = root;
  for (const std::string& t : *tokens) {
    bool digits = !t.empty() && std::all_of(t.begin(), t.end(),
                                            [](unsigned char c) { return std::isdigit(c) != 0; });
    bool index = node ? node->is_array() : digits;
    if (node && node->is_array() && digits && std::stoull(t) < node->size()) {
      node = &(*node)[std::stoull(t)];
    } else if (node && node->is_object() && node->contains(t)) {
      node = &(*node)[t];
    } else {
      node = nullptr;  // past what the document has: fall back to the digits rule
    }
    if (index) {
      out += "[" + t + "]";
    } else {
      if (!out.empty()) out += ".";
      out += t;
    }
  }
  return out;
}

bool PercentDecode(std::string_view in, std::string* out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    if (i + 2 >= in.size() || hex(in[i + 1]) < 0 || hex(in[i + 2]) < 0) return false;
    *out += static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
    i += 2;
  }
  return true;
}

}  // namespace chainctl
