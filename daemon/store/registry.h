// The task and chain registry of chaind (DESIGN.md §1 "registry"): validated chains stored in
// the Store with versions, and every task definition they contain versioned by content.
//
// Chains. A chain's content hash is the SHA-256 of its canonical JSON (content_hash.h) without
// chain_id. A chain posted without chain_id is named "chain-" + the first 12 hex digits of
// that hash, so posting it again names it the same. PutChain compares with the chain's latest
// version: the same content is not stored again; other content becomes version latest + 1.
// Older versions stay readable until DeleteChain removes the chain with all its versions
// (posting it again afterwards starts at version 1).
//
// Tasks. Keyed by task_id across chains (history and the predictor key on task_id, so what
// they learned survives edits of a chain); each distinct content of a task_id is one task
// version, numbered 1, 2, ..., which records the chain versions that use it (`used_by`).
// DeleteChain keeps the task versions but drops the deleted chain from their `used_by`.
//
// Threads: as Store. The writing calls (PutChain, DeleteChain) block on fsync: run them on
// thread-pool threads; the others only read.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/chain/chain.h"
#include "daemon/store/store.h"

namespace chainctl::daemon {

struct ChainVersion {
  std::string chain_id;
  int version = 0;           // 1, 2, ...
  std::string content_hash;  // 64 hex digits
  int64_t created_unix_ms = 0;
  nlohmann::json definition;  // ChainToJson form, with chain_id
};

struct TaskVersion {
  std::string task_id;
  int version = 0;           // 1, 2, ... per task_id, in order of first appearance
  std::string content_hash;  // 64 hex digits
  int64_t created_unix_ms = 0;
  nlohmann::json definition;                         // ChainToJson(chain)["tasks"][i]
  std::vector<std::pair<std::string, int>> used_by;  // (chain_id, chain version), in order
};

// Milliseconds since the Unix epoch; must be callable from any thread.
using UnixMsClock = std::function<int64_t()>;
int64_t RealUnixMs();

class Registry {
 public:
  // `store` is not owned and must outlive the registry.
  explicit Registry(Store* store, UnixMsClock clock = RealUnixMs)
      : store_(store), clock_(std::move(clock)) {}

  // Stores `chain`, which must have passed validation (common/chain/load.h). `*created` tells
  // whether a new version was made; `*out` is the new or the unchanged latest version.
  bool PutChain(const Chain& chain, ChainVersion* out, bool* created, std::string* err);
  // `version` 0 = the latest. OK with nullopt: no such chain or version.
  bool GetChain(const std::string& chain_id, int version, std::optional<ChainVersion>* out,
                std::string* err);
  // The latest version of each chain, sorted by chain_id.
  bool ListChains(std::vector<ChainVersion>* out, std::string* err);
  // The version numbers of a chain, ascending; empty: no such chain.
  bool ListChainVersions(const std::string& chain_id, std::vector<int>* versions, std::string* err);
  // Removes the chain and all its versions; `*existed` false if there was none.
  bool DeleteChain(const std::string& chain_id, bool* existed, std::string* err);

  // The versions of a task, newest first; empty: no such task.
  bool GetTask(const std::string& task_id, std::vector<TaskVersion>* versions, std::string* err);
  // The latest version of each task, sorted by task_id.
  bool ListTasks(std::vector<TaskVersion>* latest, std::string* err);

 private:
  Store* store_;
  UnixMsClock clock_;
};

}  // namespace chainctl::daemon
