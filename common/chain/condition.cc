#include "common/chain/condition.h"

#include <algorithm>
#include <regex>

#include "common/json_text.h"

namespace chainctl {
namespace {

using nlohmann::json;

bool Compare(ConditionOp op, const json& a, const json& b) {
  auto ordered = [op](const auto& x, const auto& y) {
    switch (op) {
      case ConditionOp::kGt:
        return x > y;
      case ConditionOp::kGe:
        return x >= y;
      case ConditionOp::kLt:
        return x < y;
      default:
        return x <= y;
    }
  };
  if (a.is_number() && b.is_number()) return ordered(a.get<double>(), b.get<double>());
  if (a.is_string() && b.is_string()) return ordered(a.get<std::string>(), b.get<std::string>());
  return false;
}

std::string Short(const json& value) {
  std::string text = DumpJson(value);
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

}  // namespace

bool ConditionHolds(const Condition& c, const json& context, std::string* why) {
  const json* found = nullptr;
  try {
    json::json_pointer pointer(c.path);
    if (context.contains(pointer)) found = &context.at(pointer);
  } catch (const json::exception&) {
    *why = c.path + " is not a JSON Pointer";
    return false;
  }
  bool holds = false;
  switch (c.op) {
    case ConditionOp::kExists:
      holds = found != nullptr;
      break;
    case ConditionOp::kNotExists:
      holds = found == nullptr;
      break;
    case ConditionOp::kEq:
      holds = found && *found == c.value;
      break;
    case ConditionOp::kNe:
      holds = found && *found != c.value;
      break;
    case ConditionOp::kIn:
      holds = found && c.value.is_array() &&
              std::find(c.value.begin(), c.value.end(), *found) != c.value.end();
      break;
    case ConditionOp::kMatches:
      try {
        holds =
            found && found->is_string() && c.value.is_string() &&
            std::regex_search(found->get<std::string>(), std::regex(c.value.get<std::string>()));
      } catch (const std::regex_error&) {
        holds = false;
      }
      break;
    default:
      holds = found && Compare(c.op, *found, c.value);
  }
  if (!holds) {
    std::string what = ToString(c.op);
    if (c.op != ConditionOp::kExists && c.op != ConditionOp::kNotExists) {
      what += " " + Short(c.value);
    }
    *why = c.path + (found ? " is " + Short(*found) + ", not " : " selects nothing, not ") + what;
  }
  return holds;
}

bool ConditionsHold(const std::vector<Condition>& conditions, const json& context,
                    std::string* why) {
  for (const Condition& c : conditions) {
    if (!ConditionHolds(c, context, why)) return false;
  }
  return true;
}

}  // namespace chainctl
