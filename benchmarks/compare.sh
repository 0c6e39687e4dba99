#!/usr/bin/env bash
# Side-by-side speed: emberlm vs llama.cpp vs ik_llama.cpp on the same GGUF
# files and thread count, runs interleaved, medians reported as ratios, plus
# the machine's limits (memory bandwidth for decode, int8 peak for prefill).
#
#   benchmarks/compare.sh PEERS_DIR [THREADS] [REPS] [MODELS_DIR]
#
# PEERS_DIR holds llama.cpp/build/bin and ik_llama.cpp/build/bin, built outside
# this tree (for example by the shared peers script). Models are written by
# `ember make-model` into MODELS_DIR (default: ../bench-models) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
peers=${1:?PEERS_DIR}; threads=${2:-2}; reps=${3:-3}; models=${4:-../bench-models}
ember=build/ember
lc=$peers/llama.cpp/build/bin/llama-bench
ik=$peers/ik_llama.cpp/build/bin/llama-bench
mkdir -p "$models"
declare -A shape=([tl-q4_0]="1.1B q4_0" [tl-q8_0]="1.1B q8_0" [tl-f16]="1.1B f16" [m110-q4_0]="110M q4_0")
files=(${EMBER_BENCH_FILES:-tl-q4_0 tl-q8_0 tl-q4_k_m tl-f16 m110-q4_0})
for f in "${files[@]}" tl-f16; do
  [ "$f" = tl-q4_k_m ] && continue
  [ -f "$models/$f.gguf" ] || { set -- ${shape[$f]}; "$ember" --quiet make-model "$models/$f.gguf" --shape "$1" --type "$2"; }
done
# Q4_K_M: the usual mixture, quantized from the F16 file by `ember quantize`
for f in "${files[@]}"; do
  [ "$f" = tl-q4_k_m ] && [ ! -f "$models/$f.gguf" ] && "$ember" --quiet quantize "$models/tl-f16.gguf" "$models/$f.gguf" q4_k_m
done
out=$(mktemp -d)
for r in $(seq "$reps"); do
  # the limits, probed in every repetition (the host's bandwidth moves with
  # its neighbours' load): each repetition's runs are set against its own
  build/probe_membw "$threads" 1024 >> "$out/membw.json"
  build/probe_int8 "$threads" >> "$out/int8.json"
  for f in "${files[@]}"; do
    m="$models/$f.gguf"
    "$ember" bench -m "$m" -p 128 -n 64 -t "$threads" -r 1 --json >> "$out/ember-$f.json"
    # F16 also as BF16 (lossy, what ik_llama.cpp's -rtr does to F16 weights)
    [ "$f" = tl-f16 ] && "$ember" bench -m "$m" -p 128 -n 64 -t "$threads" -r 1 --f16-as-bf16 --json >> "$out/ember-$f-bf16.json"
    [ -x "$lc" ] && "$lc" -m "$m" -p 128 -n 64 -t "$threads" -r 1 -o json 2>/dev/null >> "$out/llama-$f.json" || true
    [ -x "$ik" ] && "$ik" -m "$m" -p 128 -n 64 -t "$threads" -r 1 -rtr 1 -o json 2>/dev/null >> "$out/ik-$f.json" || true
  done
done
/usr/bin/python3 benchmarks/summarize.py "$out" "${files[@]}"
