#!/usr/bin/env bash
# Trains the default model, emberfall, from nothing: generates the corpus,
# trains the tokenizer and the model (CPU, 2 threads, fixed seeds), exports
# the GGUF with `ember convert-llama2c`, and checks that `ember perplexity`
# agrees with the trainer (and, when models/emberfall.gguf is present, how
# close the new model comes to it on the same held-out text).
#
#   bash tools/train/train.sh [OUT_DIR]      # default build/train; about 20 minutes on 2 cores
#
# Needs build/ember (bash scripts/setup.sh) and Debian's python3-torch,
# python3-sentencepiece and libopenblas0-openmp (installed here when missing,
# as root or with sudo). To replace the committed model:
#   cp OUT_DIR/emberfall.gguf models/ && cp OUT_DIR/data/val.txt models/emberfall-heldout.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build/train}
python=/usr/bin/python3
ember=build/ember
[ -x "$ember" ] || { echo "train: build first (bash scripts/setup.sh)" >&2; exit 1; }

. scripts/apt-packages.sh
install_missing train python3-torch python3-sentencepiece libopenblas0-openmp

# Debian's torch calls the system BLAS; the reference one is 5-10x slower than
# OpenBLAS. Use OpenBLAS's OpenMP build whatever the system default is, with
# one fixed kernel set (AVX2), and let waiting OpenMP threads sleep (on shared
# cores, spinning threads slow every step several times over).
openblas=/usr/lib/x86_64-linux-gnu/openblas-openmp
if [ -e "$openblas/libblas.so.3" ]; then
  export LD_LIBRARY_PATH="$openblas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export OPENBLAS_CORETYPE=Haswell
else
  echo "train: $openblas is missing; training will be several times slower" >&2
fi
export OMP_WAIT_POLICY=PASSIVE

mkdir -p "$out"
start=$(date +%s)
echo "== corpus"
$python tools/train/gen_corpus.py --out "$out/data" --scenes 40000 --val-scenes 400 --seed 1234
echo "== tokenizer"
$python tools/train/tokenizer.py --data "$out/data" --vocab 1536
echo "== model"
$python tools/train/train.py --data "$out/data" --out "$out" --steps 1200 --seed 1 --threads 2
echo "== export"
"$ember" --quiet convert-llama2c "$out/model.bin" "$out/data/tokenizer.model" "$out/emberfall.gguf" --type f16 \
  --name "emberfall" --license MIT --chat-template tools/train/chat_template.jinja \
  --meta "general.description=A 1.9M-parameter Llama-architecture model of village NPC dialogue, trained by emberlm (tools/train) on its own synthetic corpus" \
  --meta "general.author=emberlm" --meta "general.version=1"
echo "== evaluation"
"$ember" perplexity -m "$out/emberfall.gguf" -f "$out/data/val.txt" -t 2 | tee "$out/perplexity.txt"
end=$(date +%s)

$python - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
r = json.load(open(out + "/results.json"))
ember = float(open(out + "/perplexity.txt").readline().split()[1])
diff = ember / r["heldout_perplexity"] - 1
print("trainer: held-out perplexity %.4f (unigram baseline %.2f), %d parameters, %.0f s of training"
      % (r["heldout_perplexity"], r["unigram_perplexity"], r["parameters"], r["train_seconds"]))
print("emberlm: held-out perplexity %.4f (%+.4f%% from the trainer's)" % (ember, 100 * diff))
if abs(diff) > 0.005:
    sys.exit("train: emberlm and the trainer disagree by more than 0.5%")
EOF
if [ -f models/emberfall.gguf ]; then
  committed=$("$ember" perplexity -m models/emberfall.gguf -f "$out/data/val.txt" -t 2 | head -1 | cut -d' ' -f2)
  new=$(head -1 "$out/perplexity.txt" | cut -d' ' -f2)
  $python -c "import sys; c, n = float(sys.argv[1]), float(sys.argv[2]); print('committed models/emberfall.gguf: %.4f on this held-out text; the new model is %+.2f%% from it' % (c, 100 * (n / c - 1)))" "$committed" "$new"
fi
echo "train: done in $(( end - start )) s; the model is $out/emberfall.gguf"
