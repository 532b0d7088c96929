// YAML chain files: yaml-cpp's parser feeds events to a builder that makes
// the JSON value directly, with the YAML 1.2 core schema (so `off` and `yes`
// stay strings), the position of every node, and bounds on depth and alias
// expansion. YAML::LoadAll is not used: in yaml-cpp 0.7 it loops forever,
// allocating, on a stray token after a document (`{a: 1},`).
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <cmath>
#include <sstream>
#include <string>
#include <unordered_map>

#include "common/json_pointer.h"
#include "common/source_doc.h"
#include "common/yaml_util.h"

namespace chainctl {
namespace {

// yaml-cpp counts columns in bytes; chainctl counts characters (as for
// JSON), so the column is recounted from the text. Marks past the end of the
// text (an empty node at the end) are placed at the end.
SourcePos ToPos(std::string_view text, const YAML::Mark& mark) {
  if (mark.is_null() || mark.pos < 0 || mark.column < 0) return {};
  size_t pos = static_cast<size_t>(mark.pos);
  size_t column = static_cast<size_t>(mark.column);
  if (pos > text.size() || column > pos) return PosAtOffset(text, std::min(pos, text.size()));
  int chars = 0;
  for (size_t i = pos - column; i < pos; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++chars;
  }
  return {mark.line + 1, chars + 1};
}

// An empty sequence item ("-" and nothing) has the mark of whatever follows
// it; this finds the "-" by going back over blanks, else keeps the mark.
SourcePos EmptyItemPos(std::string_view text, const YAML::Mark& mark) {
  if (mark.is_null() || mark.pos < 0) return {};
  size_t k = std::min(static_cast<size_t>(mark.pos), text.size());
  int lines_back = 0;
  while (k > 0 && (text[k - 1] == ' ' || text[k - 1] == '\t' || text[k - 1] == '\n' ||
                   text[k - 1] == '\r')) {
    if (text[--k] == '\n') ++lines_back;
  }
  if (k == 0 || text[k - 1] != '-') return ToPos(text, mark);
  size_t dash = k - 1;
  size_t line_start = text.rfind('\n', dash);
  line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
  int chars = 0;
  for (size_t i = line_start; i < dash; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++chars;
  }
  int line = mark.pos > static_cast<int>(text.size()) ? PosAtOffset(text, dash).line
                                                      : mark.line + 1 - lines_back;
  return {line, chars + 1};
}

// Thrown by the builder to stop the parse once it has reported why.
struct StopParse {};

// Builds one document's JSON from yaml-cpp's events. Errors that make the
// document unusable throw StopParse; others are reported and building goes on.
class JsonBuilder : public YAML::EventHandler {
 public:
  JsonBuilder(std::string_view text, const ParseLimits& limits, SourceDoc* doc, Diagnostics* diags)
      : text_(text), limits_(limits), doc_(doc), diags_(diags) {}

  bool done() const { return done_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override;
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override;
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override;
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override;
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override;
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    nlohmann::json value;  // the array or object being filled
    std::string pointer;
    YAML::anchor_t anchor = YAML::NullAnchor;
    size_t nodes_before = 0;  // nodes_ when the collection opened
    bool expect_key = false;  // maps: the next event is a key
    std::string key;          // maps: the key of the value that comes next
    SourcePos key_pos;
  };
  struct Anchored {
    nlohmann::json value;
    size_t nodes = 0;
    bool complete = false;  // false while the anchored collection is open
  };

  SourcePos Pos(const YAML::Mark& mark) const { return ToPos(text_, mark); }
  [[noreturn]] void Stop(const YAML::Mark& mark, const std::string& pointer, std::string message) {
    diags_->push_back({doc_->file, Pos(mark), PointerToFieldPath(pointer), std::move(message)});
    throw StopParse{};
  }
  // Reports a bad value at `pointer`; later checks leave it alone.
  void Reject(const YAML::Mark& mark, const std::string& pointer, std::string message) {
    diags_->push_back({doc_->file, Pos(mark), PointerToFieldPath(pointer), std::move(message)});
    doc_->reported.insert(pointer);
  }
  // Handles a key if one is expected; returns true if the event was a key.
  bool TakeKey(const YAML::Mark& mark, const std::string* scalar);
  // Pointer of the value that comes next, with its position recorded.
  std::string BeginValue(const YAML::Mark& mark, bool is_null);
  void CountNodes(size_t n, bool via_alias, const YAML::Mark& mark);
  void Place(nlohmann::json value, YAML::anchor_t anchor, size_t nodes);
  void Open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, bool map);
  void Close();

  std::string_view text_;
  const ParseLimits& limits_;
  SourceDoc* doc_;
  Diagnostics* diags_;
  std::vector<Frame> stack_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  size_t nodes_ = 0;
  size_t alias_nodes_ = 0;
  bool done_ = false;
};

bool JsonBuilder::TakeKey(const YAML::Mark& mark, const std::string* scalar) {
  if (stack_.empty() || !stack_.back().expect_key) return false;
  if (!scalar) Stop(mark, stack_.back().pointer, "mapping keys must be plain strings");
  Frame& top = stack_.back();
  top.expect_key = false;
  top.key = *scalar;
  top.key_pos = Pos(mark);
  std::string member = top.pointer + "/" + EscapePointerToken(top.key);
  if (top.value.contains(top.key)) {
    diags_->push_back({doc_->file, top.key_pos, PointerToFieldPath(member),
                       "duplicate key \"" + top.key + "\" (first defined at line " +
                           std::to_string(doc_->key_pos[member].line) + ")"});
  } else {
    doc_->key_pos[member] = top.key_pos;
  }
  return true;
}

std::string JsonBuilder::BeginValue(const YAML::Mark& mark, bool is_null) {
  std::string pointer;
  SourcePos pos = Pos(mark);
  if (!stack_.empty()) {
    const Frame& top = stack_.back();
    if (top.value.is_object()) {
      pointer = top.pointer + "/" + EscapePointerToken(top.key);
      // An empty value (`key:`) is marked where whatever follows it starts.
      if (is_null) pos = top.key_pos;
    } else {
      pointer = top.pointer + "/" + std::to_string(top.value.size());
      if (is_null) pos = EmptyItemPos(text_, mark);
    }
  }
  doc_->value_pos[pointer] = pos;
  return pointer;
}

void JsonBuilder::CountNodes(size_t n, bool via_alias, const YAML::Mark& mark) {
  nodes_ += n;
  if (nodes_ > limits_.max_nodes) {
    Stop(mark, "", "document has more than " + std::to_string(limits_.max_nodes) + " nodes");
  }
  if (via_alias && (alias_nodes_ += n) > limits_.max_alias_nodes) {
    Stop(mark, "",
         "YAML aliases expand to more than " + std::to_string(limits_.max_alias_nodes) + " nodes");
  }
}

void JsonBuilder::Place(nlohmann::json value, YAML::anchor_t anchor, size_t nodes) {
  if (anchor != YAML::NullAnchor) anchors_[anchor] = {value, nodes, true};
  if (stack_.empty()) {
    doc_->root = std::move(value);
    done_ = true;
    return;
  }
  Frame& top = stack_.back();
  if (top.value.is_object()) {
    top.value[top.key] = std::move(value);
    top.expect_key = true;
  } else {
    top.value.push_back(std::move(value));
  }
}

void JsonBuilder::OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) {
  if (TakeKey(mark, nullptr)) return;
  BeginValue(mark, true);
  CountNodes(1, false, mark);
  Place(nullptr, anchor, 1);
}

void JsonBuilder::OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) {
  if (TakeKey(mark, nullptr)) return;
  auto it = anchors_.find(anchor);
  if (it == anchors_.end() || !it->second.complete) {
    Stop(mark, "", "a YAML alias that refers to a node containing itself");
  }
  BeginValue(mark, false);
  CountNodes(it->second.nodes, true, mark);
  Place(it->second.value, YAML::NullAnchor, it->second.nodes);
}

void JsonBuilder::OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                           const std::string& value) {
  if (TakeKey(mark, &value)) return;
  std::string pointer = BeginValue(mark, false);
  CountNodes(1, false, mark);
  static const std::string kCore = "tag:yaml.org,2002:";
  nlohmann::json out;
  if (tag == "?") {
    out = ResolvePlainScalar(value);
  } else if (tag == "!" || tag == kCore + "str") {
    out = value;
  } else if (tag == kCore + "int" || tag == kCore + "float" || tag == kCore + "bool" ||
             tag == kCore + "null") {
    out = ResolvePlainScalar(value);
    bool ok = (tag == kCore + "int" && out.is_number_integer()) ||
              (tag == kCore + "float" && out.is_number()) ||
              (tag == kCore + "bool" && out.is_boolean()) ||
              (tag == kCore + "null" && out.is_null());
    if (!ok) {
      Reject(mark, pointer, "\"" + value + "\" is not a valid " + tag.substr(kCore.size()));
      out = nullptr;
    }
  } else {
    Reject(mark, pointer, "unsupported YAML tag \"" + tag + "\"");
    out = nullptr;
  }
  if (out.is_number_float() && !std::isfinite(out.get<double>())) {
    Reject(mark, pointer,
           "\"" + value +
               "\" is not a finite number; chain files, like JSON, "
               "have no infinity or NaN");
    out = nullptr;
  }
  Place(std::move(out), anchor, 1);
}

void JsonBuilder::Open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       bool map) {
  if (TakeKey(mark, nullptr)) return;
  if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
    Stop(mark, "", "nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
  }
  std::string pointer = BeginValue(mark, false);
  if (tag != "?" && tag != "!" &&
      tag != (map ? "tag:yaml.org,2002:map" : "tag:yaml.org,2002:seq")) {
    Reject(mark, pointer, "unsupported YAML tag \"" + tag + "\"");
  }
  CountNodes(1, false, mark);
  if (anchor != YAML::NullAnchor) anchors_[anchor] = {};  // open: an alias to it is an error
  Frame frame;
  frame.value = map ? nlohmann::json::object() : nlohmann::json::array();
  frame.pointer = std::move(pointer);
  frame.anchor = anchor;
  frame.nodes_before = nodes_ - 1;
  frame.expect_key = map;
  stack_.push_back(std::move(frame));
}

void JsonBuilder::OnSequenceStart(const YAML::Mark& mark, const std::string& tag,
                                  YAML::anchor_t anchor, YAML::EmitterStyle::value) {
  Open(mark, tag, anchor, false);
}

void JsonBuilder::OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                             YAML::EmitterStyle::value) {
  Open(mark, tag, anchor, true);
}

void JsonBuilder::Close() {
  Frame frame = std::move(stack_.back());
  stack_.pop_back();
  Place(std::move(frame.value), frame.anchor, nodes_ - frame.nodes_before);
}

// Collects nothing: used to find out whether a second document follows.
class NullHandler : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { content = true; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    content = true;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnMapEnd() override {}

  YAML::Mark start = YAML::Mark::null_mark();
  bool content = false;
};

}  // namespace

bool ParseYamlDoc(std::string_view text, const ParseLimits& limits, SourceDoc* doc,
                  Diagnostics* diags) {
  std::istringstream stream{std::string(text)};
  YAML::Parser parser(stream);
  JsonBuilder builder(text, limits, doc, diags);
  try {
    if (!parser.HandleNextDocument(builder) || !builder.done()) {
      diags->push_back({doc->file, {}, "", "empty file: expected a chain definition with 'tasks'"});
      return false;
    }
    NullHandler next;
    if (parser.HandleNextDocument(next)) {
      diags->push_back({doc->file, ToPos(text, next.start), "",
                        next.content ? "the file holds more than one YAML document; a chain "
                                       "file holds one"
                                     : "unexpected text after the end of the document"});
      return false;
    }
  } catch (const StopParse&) {
    return false;
  } catch (const YAML::DeepRecursion& e) {
    diags->push_back({doc->file, ToPos(text, e.mark), "",
                      "nesting deeper than " + std::to_string(limits.max_depth) + " levels"});
    return false;
  } catch (const YAML::Exception& e) {
    diags->push_back({doc->file, ToPos(text, e.mark), "", "invalid YAML: " + e.msg});
    return false;
  }
  return true;
}

}  // namespace chainctl
