#!/bin/sh
# Input: {"paths": [...]} on stdin. Output: {"files": [{"path", "bytes"}]}.
set -eu
python3 -c '
import json, os, sys
paths = json.load(sys.stdin)["paths"]
files = [{"path": p, "bytes": os.path.getsize(p)} for p in paths]
json.dump({"files": files}, sys.stdout)
'
