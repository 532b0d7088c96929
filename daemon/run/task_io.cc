#include "daemon/run/task_io.h"

#include <dirent.h>

#include <filesystem>
#include <system_error>

#include "common/json_text.h"

namespace chainctl::daemon {

using nlohmann::json;
namespace fs = std::filesystem;

bool BuildTaskInput(const TaskSpec& task, const json& trigger,
                    const std::vector<std::optional<json>>& dep_outputs, json* input,
                    std::string* err) {
  auto output_of = [&](size_t k) { return dep_outputs[k] ? *dep_outputs[k] : json(nullptr); };
  if (!task.input_map.empty()) {
    json context = {{"trigger", trigger}};
    for (size_t k = 0; k < task.dependencies.size(); ++k) {
      context[task.dependencies[k]] = output_of(k);
    }
    *input = json::object();
    for (const auto& [field, pointer] : task.input_map) {
      try {
        (*input)[field] = context.at(json::json_pointer(pointer));
      } catch (const json::exception&) {
        *err = "input_map." + field + ": " + pointer + " selects nothing";
        return false;
      }
    }
    return true;
  }
  if (task.dependencies.empty()) {
    *input = trigger;
  } else if (task.dependencies.size() == 1) {
    *input = output_of(0);
  } else {
    *input = json::object();
    for (size_t k = 0; k < task.dependencies.size(); ++k) {
      (*input)[task.dependencies[k]] = output_of(k);
    }
  }
  return true;
}

bool ParseTaskOutput(std::string_view text, bool schema_free, json* output, std::string* err) {
  JsonTextFault fault = JsonTextFault::kNone;
  std::string why;
  if (DecodeJsonText(text, output, &fault, &why)) return true;
  if (fault == JsonTextFault::kNotUtf8 || fault == JsonTextFault::kTooDeep) {
    *err = "output " + (fault == JsonTextFault::kNotUtf8 ? "is " + why : why);
    return false;
  }
  if (schema_free) {
    *output = {{"stdout", std::string(text)}};  // UTF-8: checked above
    return true;
  }
  *err = text.empty()
             ? "output_schema: the task printed no output, and its output_schema wants "
               "JSON"
             : "output_schema: the output is not JSON: \"" + PrintableBytes(text, 40) + "\"";
  return false;
}

std::string DescribeViolations(const std::vector<JsonSchema::Violation>& violations, size_t max) {
  std::string out;
  for (size_t i = 0; i < violations.size() && i < max; ++i) {
    if (i) out += "; ";
    const std::string& where = violations[i].pointer;
    out += (where.empty() ? "(root)" : where) + ": " + violations[i].message;
  }
  if (violations.size() > max) out += "; ...";
  return out;
}

bool AcceptsAnything(const json& schema) {
  return (schema.is_boolean() && schema.get<bool>()) || (schema.is_object() && schema.empty());
}

bool LinkTree(const std::string& from, const std::string& to, std::string* err, int* error_number) {
  auto fail = [err, error_number](const std::string& what, const std::error_code& ec) {
    *err = what + ": " + ec.message();
    if (error_number) *error_number = ec.value();
    return false;
  };
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) return fail("cannot create " + to, ec);
  for (auto it = fs::recursive_directory_iterator(from, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    fs::path target = fs::path(to) / fs::relative(it->path(), from, ec);
    if (ec) break;
    fs::file_status status = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_directory(status)) {
      fs::create_directories(target, ec);
    } else if (fs::is_symlink(status)) {
      fs::copy_symlink(it->path(), target, ec);
    } else {
      fs::create_hard_link(it->path(), target, ec);
      if (ec) {
        ec.clear();
        fs::copy_file(it->path(), target, ec);
      }
    }
    if (ec) return fail("cannot hand over " + it->path().string(), ec);
  }
  if (ec) return fail("cannot read " + from, ec);
  return true;
}

bool HasEntries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return false;
  bool any = false;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") {
      any = true;
      break;
    }
  }
  closedir(d);
  return any;
}

}  // namespace chainctl::daemon
