#!/usr/bin/python3
"""Reads the sales CSV named by the input and gives the revenue per day.

Input {"csv": PATH}; output {"days": [{"date", "revenue"}...], "rows": N}. Like every step of
this chain, it imports what it needs, and runs its code once on a sample, before it reads its
input, so a prewarmed process has paid for all that already (prewarm: spawn).
"""
import io
import json
import os
import sys

import pandas as pd


def revenue_per_day(csv):
    sales = pd.read_csv(csv, parse_dates=["date"])
    sales["revenue"] = sales["units"] * sales["price"]
    return len(sales), sales.groupby("date", as_index=False)["revenue"].sum()


# pandas loads parts of itself (the CSV parser, dates) on first use: use them once on a sample
# before reading the input, so that a prewarmed process has paid for that too.
revenue_per_day(io.StringIO("date,units,price\n2026-01-01,1,1.5\n"))

request = json.load(sys.stdin)
rows, days = revenue_per_day(request["csv"])
json.dump({"rows": rows,
           "days": [{"date": d.strftime("%Y-%m-%d"), "revenue": round(float(r), 2)}
                    for d, r in zip(days["date"], days["revenue"])]}, sys.stdout)
sys.stdout.flush()
os._exit(0)  # the output is written: skip the interpreter's teardown of pandas (~0.1 s)
