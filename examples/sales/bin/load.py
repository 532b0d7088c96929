#!/usr/bin/python3
"""Reads the sales CSV named by the input and gives the revenue per day.

Input {"csv": PATH}; output {"days": [{"date", "revenue"}...], "rows": N}. Like every step of
this chain, it imports what it needs before it reads its input, so a prewarmed process has
paid for the import already (prewarm: spawn).
"""
import json
import sys

import pandas as pd

request = json.load(sys.stdin)
sales = pd.read_csv(request["csv"], parse_dates=["date"])
sales["revenue"] = sales["units"] * sales["price"]
days = sales.groupby("date", as_index=False)["revenue"].sum()
json.dump({"rows": len(sales),
           "days": [{"date": d.strftime("%Y-%m-%d"), "revenue": round(float(r), 2)}
                    for d, r in zip(days["date"], days["revenue"])]}, sys.stdout)
