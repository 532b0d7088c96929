#!/usr/bin/env bash
# End-to-end, issue 17 "CI output" and "a picture of a run": a chain of three tasks where the
# second fails, run by chainctl as CI runs it. Under GITHUB_ACTIONS=true each task's log is in a
# ::group:: and the failure an ::error at the failing task's line in the chain file; GitLab gets
# sections; --junit is JUnit XML that python's xml.etree reads (and xmllint validates against
# tests/e2e/data/junit.xsd when installed); --summary is JSON with every task; chainctl trace
# writes Chrome trace JSON whose events are the run's attempts.
# Needs CHAINCTL, CHAIND (set by ctest).
set -uo pipefail
: "${CHAINCTL:?}" "${CHAIND:?}"

here=$(dirname "${BASH_SOURCE[0]}")
source "$here/lib.sh"
daemon_setup chainctl-ci-output
check "chaind starts" start_chaind

# The failing task's log holds what CI output must survive: bytes that are not UTF-8, control
# characters, markup, and a workflow command of its own.
cat > "$tmp/ci.yaml" <<'YAML'
chain_id: ci_out
tasks:
  - task_id: build
    command: "echo 'building' >&2; echo '{}'"
  - task_id: test
    dependencies: [build]
    command: "printf 'test output line\\n\\001\\377\\033[31mred <&> ]]>\\n::error::forged\\n' >&2; exit 3"
  - task_id: deploy
    dependencies: [test]
    command: "echo '{}'"
YAML
line=$(grep -n 'task_id: test' "$tmp/ci.yaml" | cut -d: -f1)

# run_ci OUT_PREFIX ENV... -- CHAINCTL-ARGS...: the status in OUT.rc, stdout and stderr beside.
run_ci() {
  local prefix=$1
  shift
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  env -u GITHUB_ACTIONS -u GITLAB_CI "${envs[@]}" "$CHAINCTL" "$@" \
    > "$prefix.out" 2> "$prefix.err"
  echo $? > "$prefix.rc"
}
rc_is() { [[ $(cat "$1.rc") == "$2" ]] || { echo "  $1: exit $(cat "$1.rc")" >&2; return 1; }; }
count() { grep -c -F -- "$2" "$1" || true; }  # count FILE TEXT: lines holding TEXT

# --- GitHub Actions ---
run_ci "$tmp/gh" GITHUB_ACTIONS=true GITHUB_OUTPUT="$tmp/gh.output" \
  GITHUB_STEP_SUMMARY="$tmp/gh.summary.md" -- run -f "$tmp/ci.yaml" --progress plain \
  --junit "$tmp/junit.xml" --summary "$tmp/summary.json"
check "run exits 1: a task failed" rc_is "$tmp/gh" 1
check "the step's outputs: the run id and its status" \
  grep -qx "run_id=$(python3 -c "import json; print(json.load(open('$tmp/summary.json'))['run_id'])")" \
  "$tmp/gh.output"
check "  status=failed" grep -qx "status=failed" "$tmp/gh.output"
check "the job summary: a row per task" bash -c "grep -q '^| build | succeeded | 1 | ' \
  '$tmp/gh.summary.md' && grep -q '^| deploy | upstream_failed | 0 | ' '$tmp/gh.summary.md'"
check "a group per task, with its state" bash -c "
  grep -q '^::group::build (succeeded, [0-9.]*s)\$' '$tmp/gh.err' &&
  grep -q '^::group::test (failed, [0-9.]*s)\$' '$tmp/gh.err' &&
  grep -q '^::group::deploy (upstream_failed)\$' '$tmp/gh.err'"
check "each group ends" test "$(count "$tmp/gh.err" '::endgroup::')" = 3
check "an ::error at the failing task's line ($line) of the chain file" \
  grep -q -F "::error file=$tmp/ci.yaml,line=$line,title=task test failed::task test failed: exited with status 3" \
  "$tmp/gh.err"
check "one ::error of chainctl's: the forged one is inside ::stop-commands::" python3 - \
  "$tmp/gh.err" <<'PY'
import re, sys
text = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
errors = [l for l in text.splitlines() if l.startswith("::error")]
assert len(errors) == 2, errors
forged = text.index("::error::forged")
start = text.rfind("::stop-commands::", 0, forged)
token = text[start:].split("\n", 1)[0][len("::stop-commands::"):]
assert len(token) >= 16, token
assert text.index("::%s::" % token, start) > forged
PY
check "the failed task's log is shown once" test "$(count "$tmp/gh.err" 'test output line')" = 1
check "stdout stays empty on failure" test ! -s "$tmp/gh.out"

check "the JUnit XML has the testcases and one failure" python3 - "$tmp/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suites = root.findall("testsuite")
assert len(suites) == 1 and suites[0].get("name") == "ci_out", suites
suite = suites[0]
assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
cases = {c.get("name"): c for c in suite.findall("testcase")}
assert list(cases) == ["build", "test", "deploy"], list(cases)
assert all(c.get("classname") == "ci_out" and float(c.get("time")) >= 0 for c in cases.values())
failures = suite.findall("testcase/failure")
assert len(failures) == 1 and cases["test"].find("failure") is not None
assert failures[0].get("message") == "exited with status 3", failures[0].get("message")
assert "test output line" in failures[0].text and "red <&> ]]>" in failures[0].text
assert cases["deploy"].find("skipped").get("message") == "upstream_failed"
assert len(cases["build"]) == 0
PY
if command -v xmllint > /dev/null; then
  check "the JUnit XML is valid against the JUnit XSD" \
    xmllint --noout --schema "$here/data/junit.xsd" "$tmp/junit.xml"
  # The schema is no rubber stamp: a testsuite without its tests count is refused.
  sed 's/<testsuite name="ci_out" tests="3"/<testsuite name="ci_out"/' "$tmp/junit.xml" \
    > "$tmp/broken.xml"
  check "and the XSD refuses a testsuite without tests=" \
    bash -c "! xmllint --noout --schema '$here/data/junit.xsd' '$tmp/broken.xml' 2> /dev/null"
else
  echo "xmllint not installed (Debian: libxml2-utils): the XSD check is left out"
fi

check "the summary is JSON with every task" python3 - "$tmp/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["status"] == "failed" and s["chain_id"] == "ci_out" and s["run_id"].startswith("run-")
tasks = {t["task_id"]: t for t in s["tasks"]}
assert list(tasks) == ["build", "test", "deploy"], list(tasks)
assert [t["state"] for t in tasks.values()] == ["succeeded", "failed", "upstream_failed"]
assert tasks["test"]["error"] == "exited with status 3" and tasks["test"]["attempts"] == 1
assert isinstance(tasks["build"]["cold"], bool) and tasks["build"]["cached"] is False
assert tasks["build"]["duration_s"] >= 0 and tasks["deploy"]["duration_s"] is None
assert s["duration_s"] >= tasks["build"]["duration_s"]
PY
run=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' \
  "$tmp/summary.json")

# --- chainctl trace ---
check "trace RUN -o FILE" "$CHAINCTL" trace "$run" -o "$tmp/trace.json"
curl -s --unix-socket "$sock" "http://localhost/history?run=$run" > "$tmp/history.json"
check "the trace is JSON whose attempt events are the run's attempts" python3 - \
  "$tmp/trace.json" "$tmp/history.json" <<'PY'
import json, sys
trace = json.load(open(sys.argv[1]))
records = json.load(open(sys.argv[2]))["records"]
events = trace["traceEvents"]
attempts = [e for e in events if e.get("cat") == "attempt"]
assert sorted((e["name"], e["args"]["attempt"]) for e in attempts) == \
    sorted((r["task_id"], r["attempt"]) for r in records), (attempts, records)
assert len(attempts) == 2  # build and test; deploy never ran
for e in events:
    assert e["ph"] in ("X", "M") and e["pid"] in (1, 2), e
    if e["ph"] == "X":
        assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 0, e
        assert e["ts"] >= 0 and e["tid"] >= 1, e
names = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
assert "slot 1" in names, names
parts, waits = {}, {}  # each attempt's parts and wait follow it
for e in events:
    if e.get("cat") == "attempt":
        a = e
        parts[id(a)] = []
    elif e.get("cat") == "queue":
        assert e["pid"] == 2 and e["name"] == a["name"] + " queued", (a, e)
        waits[id(a)] = e
    elif e["ph"] == "X":
        parts[id(a)].append(e)
for a in attempts:  # on slots (pid 1); its parts lie within it, one after the other
    assert a["pid"] == 1, a
    p = parts[id(a)]
    assert [x["name"] for x in p][-1] == "work", (a, p)
    assert all(x["tid"] == a["tid"] for x in p), (a, p)
    assert p[0]["ts"] == a["ts"] and p[-1]["ts"] + p[-1]["dur"] == a["ts"] + a["dur"], (a, p)
    assert all(x["ts"] + x["dur"] == y["ts"] for x, y in zip(p, p[1:])), (a, p)
    w = waits.get(id(a))  # a wait ends at the start
    assert w is None or w["ts"] + w["dur"] == a["ts"], (a, w)
    assert (w is None) == (a["args"]["queue_ms"] == 0), (a, w)
# build then test, one after the other: the same slot.
assert len({a["tid"] for a in attempts}) == 1, attempts
PY
check "trace -o - writes the same to stdout" \
  bash -c "'$CHAINCTL' trace '$run' -o - | cmp - '$tmp/trace.json'"
run_ci "$tmp/nosuch" -- trace run-999999 -o "$tmp/nosuch.json"
check "trace of a run chaind does not know fails: exit 4, not found" \
  bash -c "[[ \$(cat '$tmp/nosuch.rc') == 4 ]]"
check "and writes no file" test ! -e "$tmp/nosuch.json"

# --- GitLab CI ---
run_ci "$tmp/gl" GITLAB_CI=true -- run -f "$tmp/ci.yaml" --progress quiet
check "GitLab: exit 1" rc_is "$tmp/gl" 1
check "GitLab: a collapsible section per task" python3 - "$tmp/gl.err" <<'PY'
import re, sys
text = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
starts = re.findall(r"\x1b\[0Ksection_start:\d+:chainctl_task_(\w+)\[collapsed=(\w+)\]\r\x1b\[0K", text)
ends = re.findall(r"\x1b\[0Ksection_end:\d+:chainctl_task_(\w+)\r\x1b\[0K", text)
assert starts == [("build", "true"), ("test", "false"), ("deploy", "true")], starts
assert ends == ["build", "test", "deploy"], ends
PY
check "GitLab: the failure at its line" grep -q -F "ERROR: $tmp/ci.yaml:$line: task test failed" \
  "$tmp/gl.err"

# --- No CI: nothing of the above, the log tail as before ---
run_ci "$tmp/plain" -- run -f "$tmp/ci.yaml" --progress quiet
check "no CI: exit 1" rc_is "$tmp/plain" 1
check "no CI: no groups or annotations" \
  bash -c "! grep -q -e '^::group::' -e '^::error file=' -e section_start '$tmp/plain.err'"
check "no CI: the failed task's log tail once" \
  test "$(count "$tmp/plain.err" 'test output line')" = 1

# --- trigger --wait and resume --wait write the files too ---
run_ci "$tmp/trig" -- trigger ci_out --wait --junit "$tmp/trig.xml" --summary "$tmp/trig.json"
check "trigger --wait: exit 1" rc_is "$tmp/trig" 1
check "trigger --wait --junit writes JUnit" python3 -c \
  "import sys,xml.etree.ElementTree as E; assert len(E.parse(sys.argv[1]).findall('.//testcase')) == 3" \
  "$tmp/trig.xml"
trig_run=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' \
  "$tmp/trig.json")
run_ci "$tmp/res" -- resume "$trig_run" --wait --summary "$tmp/res.json"
check "resume --wait --summary writes the resumed run" python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))
assert s['run_id'] == sys.argv[2] and len(s['tasks']) == 3, s
assert s['tasks'][1]['attempts'] == 2, s['tasks'][1]" "$tmp/res.json" "$trig_run"

# --- a file that cannot be written: said, and the exit status stays the run's ---
run_ci "$tmp/nowrite" -- run -f "$tmp/ci.yaml" --progress quiet --junit "$tmp/no/such/dir/j.xml"
check "an unwritable --junit: the run's exit status (1)" rc_is "$tmp/nowrite" 1
check "and why" grep -q "cannot write $tmp/no/such/dir/j.xml" "$tmp/nowrite.err"

finish
