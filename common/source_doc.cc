#include "common/source_doc.h"

#include <cctype>

#include "common/units.h"

namespace chainctl {
namespace {

// Length of the UTF-8 sequence starting at s[i], or 0 if it is invalid
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return len;
}

// Rejects text that is not UTF-8 or holds control characters other than
// tab, newline and carriage return.
bool CheckText(std::string_view text, const std::string& file, Diagnostics* diags) {
  for (size_t i = 0; i < text.size();) {
    size_t len = Utf8SequenceLength(text, i);
    if (len == 0) {
      char hex[8];
      snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(text[i]));
      diags->push_back(
          {file, PosAtOffset(text, i), "",
           std::string("not valid UTF-8 (byte ") + hex + "); chain files must be UTF-8 text"});
      return false;
    }
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (len == 1 && (c < 0x20 || c == 0x7F) && c != '\t' && c != '\n' && c != '\r') {
      char code[8];
      snprintf(code, sizeof code, "U+%04X", c);
      diags->push_back(
          {file, PosAtOffset(text, i), "",
           std::string("control character ") + code + " in text; is this a binary file?"});
      return false;
    }
    i += len;
  }
  return true;
}

bool IsBlank(std::string_view text) {
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

SourcePos SourceDoc::ValuePos(std::string_view pointer) const {
  std::string p(pointer);
  while (true) {
    auto it = value_pos.find(p);
    if (it != value_pos.end()) return it->second;
    if (p.empty()) return {};
    p.erase(p.rfind('/'));
  }
}

SourcePos SourceDoc::KeyPos(std::string_view pointer) const {
  auto it = key_pos.find(std::string(pointer));
  return it != key_pos.end() ? it->second : ValuePos(pointer);
}

SourcePos PosAtOffset(std::string_view text, size_t offset) {
  SourcePos pos{1, 1};
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++pos.line;
      pos.column = 1;
    } else if ((c & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++pos.column;
    }
  }
  return pos;
}

std::string JsonTypeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "integer";
    case nlohmann::json::value_t::number_float:
      return "number";
    default:
      return value.type_name();
  }
}

SourceFormat DetectFormat(std::string_view file_name, std::string_view text) {
  if (file_name.ends_with(".json")) return SourceFormat::kJson;
  if (file_name.ends_with(".yaml") || file_name.ends_with(".yml")) return SourceFormat::kYaml;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    return c == '{' || c == '[' ? SourceFormat::kJson : SourceFormat::kYaml;
  }
  return SourceFormat::kYaml;
}

bool ParseSourceDoc(std::string_view text, SourceFormat format, const ParseLimits& limits,
                    SourceDoc* doc, Diagnostics* diags) {
  if (text.size() > limits.max_bytes) {
    diags->push_back(
        {doc->file,
         {},
         "",
         "file is too large: the limit is " + FormatSize(limits.max_bytes) + " bytes"});
    return false;
  }
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte order mark
  if (!CheckText(text, doc->file, diags)) return false;
  if (IsBlank(text)) {
    diags->push_back({doc->file, {}, "", "empty file: expected a chain definition with 'tasks'"});
    return false;
  }
  if (format == SourceFormat::kAuto) format = DetectFormat(doc->file, text);
  return format == SourceFormat::kJson ? ParseJsonDoc(text, limits, doc, diags)
                                       : ParseYamlDoc(text, limits, doc, diags);
}

}  // namespace chainctl
