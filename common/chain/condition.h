// `when` conditions (DESIGN.md §2, §4): whether a task runs, decided from the trigger input
// and its dependencies' outputs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/chain/chain.h"

namespace chainctl {

// True if `condition` holds in `context` ({"trigger": input, "<task_id>": output, ...}).
// A path that selects nothing makes every op but not_exists false; gt/ge/lt/le compare two
// numbers or two strings, anything else is false; `in` looks for the value in the list
// `condition.value`; `matches` searches a string with an ECMAScript regex. When false, *why
// says so in one line ("/router/branch is \"b\", not eq \"a\"").
bool ConditionHolds(const Condition& condition, const nlohmann::json& context, std::string* why);

// All of `conditions` hold (true for none); *why names the first that does not.
bool ConditionsHold(const std::vector<Condition>& conditions, const nlohmann::json& context,
                    std::string* why);

}  // namespace chainctl
