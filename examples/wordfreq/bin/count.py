#!/usr/bin/env python3
"""Input: {"words": [...], "top": N}. Output: {"top": [[word, n]...], "distinct": N}."""
import collections
import json
import sys

data = json.load(sys.stdin)
counts = collections.Counter(data["words"])
top = counts.most_common(int(data.get("top") or 10))
json.dump({"top": top, "distinct": len(counts)}, sys.stdout)
