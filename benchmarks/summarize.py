#!/usr/bin/python3
"""Medians and ratios from benchmarks/compare.sh's raw outputs (a folder of JSON)."""
import json
import os
import re
import statistics
import sys


def ember_runs(path):
    runs = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                runs.append(json.loads(line))
    return runs


def peer_runs(path):
    """llama-bench -o json prints one JSON array per run; collect pp and tg tokens/s."""
    pp, tg = [], []
    if not os.path.exists(path):
        return pp, tg
    text = open(path).read()
    for arr in re.findall(r"\[.*?\]\s*(?=\[|$)", text, re.S):
        try:
            for rec in json.loads(arr):
                (pp if rec.get("n_prompt", 0) > 0 else tg).append(rec["avg_ts"])
        except (json.JSONDecodeError, KeyError):
            continue
    return pp, tg


def med(v):
    return statistics.median(v) if v else float("nan")


def main():
    out, files = sys.argv[1], sys.argv[2:]
    bw = json.load(open(os.path.join(out, "membw.json")))["best_read_gbps"]
    peak = json.load(open(os.path.join(out, "int8.json")))["peak_gops"]
    print(f"limits: read bandwidth {bw:.1f} GB/s, int8 peak {peak:.0f} GOPS")
    print("| file | ember pp128 / llama.cpp | / ik_llama.cpp | ember tg64 / llama.cpp | / ik_llama.cpp "
          "| decode / bandwidth limit | prefill / int8 peak |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for f in files:
        rows.append((f, f))
        if os.path.exists(os.path.join(out, f"ember-{f}-bf16.json")):
            rows.append((f + "-bf16", f))  # the same file, F16 weights as BF16 (--f16-as-bf16)
    for run, f in rows:
        e = ember_runs(os.path.join(out, f"ember-{run}.json"))
        if not e:
            continue
        e_pp, e_tg = med([r["prefill_tps"] for r in e]), med([r["decode_tps"] for r in e])
        l_pp, l_tg = (med(v) for v in peer_runs(os.path.join(out, f"llama-{f}.json")))
        i_pp, i_tg = (med(v) for v in peer_runs(os.path.join(out, f"ik-{f}.json")))
        mib = e[0]["file_mib"]
        limit_tps = bw * 1e9 / (mib * 1048576)  # weights read once per token
        params = {"tl": 1.1e9, "m1": 0.11e9}.get(f[:2], 1e9)
        ops = 2 * params * e_pp / 1e9  # multiply-adds as 2 ops
        print(f"| {run} | {e_pp / l_pp:.2f} | {e_pp / i_pp:.2f} | {e_tg / l_tg:.2f} | {e_tg / i_tg:.2f} "
              f"| {e_tg / limit_tps:.2f} | {'—' if 'f16' in f else f'{ops / peak:.3f}'} |")
    print("(medians; ratios > 1 mean emberlm is faster; raw runs in", out + ")")


if __name__ == "__main__":
    main()
