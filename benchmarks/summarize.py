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
    # one probe line per repetition (the limits as they were while that
    # repetition ran); fractions of a limit are medians of per-repetition ratios
    bws = [json.loads(l)["best_read_gbps"] for l in open(os.path.join(out, "membw.json")) if l.strip()]
    probes = [json.loads(l) for l in open(os.path.join(out, "int8.json")) if l.strip()]
    peaks = [p["peak_gops"] for p in probes]
    # float weights' limits: exact F16 runs in FP32 FMA, F16 as BF16 in VDPBF16PS
    f32s = [p.get("fp32_fma_gflops", 0.0) for p in probes]
    bf16s = [p.get("bf16_dot_gflops", 0.0) for p in probes]
    # AMX-INT8 (where the CPU has it): the int8 limit of the machine
    amxs = [p.get("amx_int8_gops", 0.0) for p in probes]
    amx = med(amxs) > 0
    if amx:
        peaks = [max(p, a) for p, a in zip(peaks, amxs)]
        # and AMX-BF16 the BF16 limit
        bf16s = [max(b, p.get("amx_bf16_gflops", 0.0)) for b, p in zip(bf16s, probes)]
    print(f"limits (median of {len(bws)} probes): read bandwidth {med(bws):.1f} GB/s "
          f"(all: {', '.join(f'{b:.1f}' for b in bws)}), int8 peak {med(peaks):.0f} GOPS"
          f"{' (AMX-INT8 TDPBSSD)' if amx else ''}, "
          f"FP32 FMA peak {med(f32s):.0f} GFLOPS, BF16 peak {med(bf16s):.0f} GFLOPS{' (AMX-BF16 TDPBF16PS)' if amx else ''}")
    print("| file | ember pp128 / llama.cpp | / ik_llama.cpp | ember tg64 / llama.cpp | / ik_llama.cpp "
          "| decode / bandwidth limit | prefill / arithmetic peak |")
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
        # weight bytes read per decoded token (all but the token embedding,
        # unless tied; older runs: the whole file)
        mib = e[0].get("decode_read_mib", e[0]["file_mib"])
        # multiply-adds per prompt token in the matmuls: the layers' weights
        # (the token embedding is a lookup) plus the output matrix once per
        # 128-token prompt (only the last token's logits are computed)
        params = {"tl": 22 * (2 * 2048 * 2048 + 2 * 2048 * 256 + 3 * 2048 * 5632) + 2048 * 32000 / 128,
                  "m1": 12 * (4 * 768 * 768 + 3 * 768 * 2048) + 768 * 32000 / 128}.get(f[:2], 1e9)
        # repetition i's run against repetition i's probes
        bw_frac = med([r["decode_tps"] * mib * 1048576 / (b * 1e9) for r, b in zip(e, bws)])  # weights read once per token
        # prefill against the peak of the arithmetic its weights use: int8
        # (quantized), FP32 FMA (exact F16), BF16 dot products (F16 as BF16)
        lim, unit = (bf16s, "bf16") if run.endswith("-bf16") else (f32s, "fp32") if "f16" in f else (peaks, "amx int8" if amx else "int8")
        pk = [2 * params * r["prefill_tps"] / 1e9 / p for r, p in zip(e, lim) if p > 0]  # multiply-adds as 2 ops
        pk_txt = f"{med(pk):.3f} ({unit})" if pk else "—"
        print(f"| {run} | {e_pp / l_pp:.2f} | {e_pp / i_pp:.2f} | {e_tg / l_tg:.2f} | {e_tg / i_tg:.2f} "
              f"| {bw_frac:.2f} | {pk_txt} |")
    print("(medians; ratios > 1 mean emberlm is faster; raw runs in", out + ")")


if __name__ == "__main__":
    main()
