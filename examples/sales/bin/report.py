#!/usr/bin/python3
"""A Markdown report of the trend and the unusual days."""
import json
import sys

import pandas as pd

data = json.load(sys.stdin)
trend, odd = data["trend"], pd.DataFrame(data["outliers"]["days"], columns=["date", "revenue"])
lines = ["# Sales", "",
         f"Mean revenue {trend['mean']:.2f} a day, {trend['per_day']:+.3f} a day per day.", "",
         "## Unusual days", ""]
lines += [f"| {r.date} | {r.revenue:.2f} |" for r in odd.itertuples()] or ["none"]
json.dump({"markdown": "\n".join(lines)}, sys.stdout)
