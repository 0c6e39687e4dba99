#!/usr/bin/env bash
# The main job: generate text with a real trained model.
#
#   bash scripts/demo.sh [MODEL.gguf] [PROMPT]
#
# Without arguments it runs the project's own default model, emberfall
# (models/emberfall.gguf: a 1.9M-parameter Llama-architecture model of village
# NPC dialogue, trained by tools/train; see models/README.md), on a scene
# opening: a line of lore, the innkeeper's persona, the player's question, and
# the innkeeper's turn to speak. It prints the prompt and the generated text,
# then a line with token counts, load time, TTFT, TPOT and tokens/s.
set -euo pipefail
cd "$(dirname "$0")/.."
ember=build/ember
[ -x "$ember" ] || { echo "demo: build first (bash scripts/setup.sh)" >&2; exit 1; }
model=${1:-models/emberfall.gguf}
default_prompt=$'The village of Ashford lies in a green valley below the old mountain road.\nInnkeeper: I am Greta. I keep the inn at the crossroads, and I am kind.\nPlayer: Good evening! Any news?\nInnkeeper:'
prompt=${2:-$default_prompt}
[ -f "$model" ] || { echo "demo: $model not found" >&2; exit 1; }
"$ember" run -m "$model" -p "$prompt" -n 120 --temp 0.8 --seed 42 -t 2 --stop '\n\n'
