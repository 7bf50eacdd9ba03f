#!/usr/bin/env bash
# Rebuild the bundled model from ../shared/data: teacher-labelled channels, `o2v train`, `o2v export`.
# Usage: scripts/build_bundled_model.sh [pooled|hcnn|bilstm] [model_dir]   (needs the [train,teacher] extras)
set -euo pipefail
cd "$(dirname "$0")/.."
net=${1:-pooled}
out=${2:-models/object2vec-sts-384}
export HF_HUB_OFFLINE=1
[ -f build/distill/train.jsonl ] || o2v distill-data build/distill --seed 0 --gold-repeats 8 --per-band 10
if [ "$net" != pooled ]; then  # sequence encoders start from the trained pooled table
  [ -f build/train-pooled_embedding/checkpoint.pt ] || o2v train configs/bundled-pooled.json
  o2v export-embeddings build/train-pooled_embedding build/distill/vocab.json build/distill/pooled_token_vectors.txt
fi
o2v train "configs/bundled-$net.json"
full=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['hyperparameters']['enc0_network'])" "configs/bundled-$net.json")
o2v export "build/train-$full" "$out" --embedding-dtype int8 --name "$(basename "$out")" \
  --training-data build/distill/sources.json
