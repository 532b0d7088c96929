// JSON chain files: nlohmann parses, and a small scanner maps every node to
// its source position, finds duplicate keys and bounds the nesting depth
// (nlohmann keeps none of these).
#include <string>
#include <unordered_set>
#include <vector>

#include "common/json_pointer.h"
#include "common/source_doc.h"

namespace chainctl {
namespace {

// Walks JSON text token by token. It trusts nothing: on text that is not
// JSON it may record odd positions, but ParseJsonDoc then discards them
// because nlohmann rejects the text.
class JsonPositionScanner {
 public:
  JsonPositionScanner(std::string_view text, const ParseLimits& limits, SourceDoc* doc,
                      Diagnostics* diags)
      : text_(text), limits_(limits), doc_(doc), diags_(diags) {}

  // Returns false if the nesting limit was exceeded (and reports it).
  bool Scan();

 private:
  struct Frame {
    Frame(bool is_object, std::string at) : object(is_object), pointer(std::move(at)) {}
    bool object;
    std::string pointer;
    size_t count = 0;        // array: elements seen
    std::string member;      // object: pointer of the member being read
    bool expect_key = true;  // object: the next string is a key
    std::unordered_set<std::string> keys;
  };

  SourcePos Here() const { return {line_, column_}; }
  void Advance();
  void SkipString();
  std::string BeginValue();
  bool ReadKey(size_t start, SourcePos pos);

  std::string_view text_;
  const ParseLimits& limits_;
  SourceDoc* doc_;
  Diagnostics* diags_;
  size_t i_ = 0;
  int line_ = 1, column_ = 1;
  std::vector<Frame> stack_;
};

void JsonPositionScanner::Advance() {
  unsigned char c = static_cast<unsigned char>(text_[i_++]);
  if (c == '\n') {
    ++line_;
    column_ = 1;
  } else if ((c & 0xC0) != 0x80) {
    ++column_;
  }
}

void JsonPositionScanner::SkipString() {
  Advance();  // opening quote
  while (i_ < text_.size() && text_[i_] != '"') {
    if (text_[i_] == '\\' && i_ + 1 < text_.size()) Advance();
    Advance();
  }
  if (i_ < text_.size()) Advance();  // closing quote
}

// Records the position of a value starting here and returns its pointer.
std::string JsonPositionScanner::BeginValue() {
  std::string pointer;
  if (!stack_.empty()) {
    Frame& top = stack_.back();
    pointer = top.object ? top.member : top.pointer + "/" + std::to_string(top.count++);
  }
  doc_->value_pos.emplace(pointer, Here());
  return pointer;
}

bool JsonPositionScanner::ReadKey(size_t start, SourcePos pos) {
  Frame& top = stack_.back();
  std::string key;
  try {
    key = nlohmann::json::parse(text_.substr(start, i_ - start)).get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return false;  // not a JSON string: nlohmann reports the syntax error
  }
  top.member = top.pointer + "/" + EscapePointerToken(key);
  top.expect_key = false;
  if (!top.keys.insert(key).second) {
    SourcePos first = doc_->key_pos[top.member];
    diags_->push_back({doc_->file, pos, PointerToFieldPath(top.member),
                       "duplicate key \"" + key + "\" (first defined at line " +
                           std::to_string(first.line) + ")"});
  }
  doc_->key_pos.emplace(top.member, pos);
  return true;
}

bool JsonPositionScanner::Scan() {
  while (i_ < text_.size()) {
    char c = text_[i_];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':') {
      Advance();
    } else if (c == ',') {
      if (!stack_.empty()) stack_.back().expect_key = true;
      Advance();
    } else if (c == '{' || c == '[') {
      std::string pointer = BeginValue();
      if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
        diags_->push_back({doc_->file, Here(), "",
                           "nesting deeper than " + std::to_string(limits_.max_depth) + " levels"});
        return false;
      }
      stack_.emplace_back(c == '{', std::move(pointer));
      Advance();
    } else if (c == '}' || c == ']') {
      if (!stack_.empty()) stack_.pop_back();
      Advance();
    } else if (c == '"') {
      SourcePos pos = Here();
      size_t start = i_;
      bool key = !stack_.empty() && stack_.back().object && stack_.back().expect_key;
      if (!key) BeginValue();
      SkipString();
      if (key && !ReadKey(start, pos)) return true;
    } else {
      BeginValue();  // number or literal
      while (i_ < text_.size() &&
             std::string_view(" \t\r\n,]}:").find(text_[i_]) == std::string_view::npos) {
        Advance();
      }
    }
  }
  return true;
}

}  // namespace

bool ParseJsonDoc(std::string_view text, const ParseLimits& limits, SourceDoc* doc,
                  Diagnostics* diags) {
  Diagnostics scan_diags;
  JsonPositionScanner scanner(text, limits, doc, &scan_diags);
  bool depth_ok = scanner.Scan();
  if (!depth_ok) {
    diags->insert(diags->end(), scan_diags.begin(), scan_diags.end());
    return false;
  }
  try {
    doc->root = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1,
    // column 2: syntax error ..."; keep what follows the position.
    std::string what = e.what();
    size_t colon = what.find(": ");
    std::string reason = colon == std::string::npos ? what : what.substr(colon + 2);
    size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    diags->push_back({doc->file, PosAtOffset(text, offset), "", "invalid JSON: " + reason});
    doc->value_pos.clear();
    doc->key_pos.clear();
    return false;
  } catch (const nlohmann::json::exception& e) {
    // "[json.exception.out_of_range.406] number overflow parsing '1e400'":
    // no offset given; point at the first occurrence of the number.
    std::string what = e.what();
    size_t quote = what.find('\'');
    std::string number = quote == std::string::npos ? "" : what.substr(quote + 1);
    if (!number.empty()) number.pop_back();
    size_t at = number.empty() ? std::string_view::npos : text.find(number);
    diags->push_back({doc->file, at == std::string_view::npos ? SourcePos{} : PosAtOffset(text, at),
                      "", "invalid JSON: number " + number + " is out of range"});
    doc->value_pos.clear();
    doc->key_pos.clear();
    return false;
  }
  diags->insert(diags->end(), scan_diags.begin(), scan_diags.end());
  return true;
}

}  // namespace chainctl
