#!/usr/bin/env bash
# Rebuild the bundled model from ../shared/data: teacher-labelled channels, `o2v train`, `o2v export`.
# Usage: scripts/build_bundled_model.sh [pooled|pooled-perturbed|pooled-ensemble|hcnn|bilstm] [model_dir] [seed]
#   (needs the [train,teacher] extras)
#   pooled: the bundled model's recipe (`o2v distill-data`, service.object2vec.teacher.build).
#   pooled-perturbed, pooled-ensemble: candidate recipes (issue 13), service.object2vec.teacher.RECIPES[NAME]
#   channels in build/distill-NAME (teacher embeddings cached in build/teacher-cache), configs/bundled-NAME.json with
#   `seed` (default 0) → build/train-NAME-s<seed>. Deterministic for a seed. pooled-perturbed: MiniLM cosines of the
#   pooled recipe's pairs plus typo'd and negated pairs; pooled-ensemble: pool pairs labelled by the mean of MiniLM's
#   and all-mpnet-base-v2's cosines (mpnet from $O2V_MPNET or ~/.cache/o2v/all-mpnet-base-v2/all-mpnet-base-v2, see
#   teacher.mpnet_path).
set -euo pipefail
cd "$(dirname "$0")/.."
net=${1:-pooled}
out=${2:-service/model/bundled/object2vec-sts-384}
seed=${3:-0}
export HF_HUB_OFFLINE=1
if [ "$net" = pooled-perturbed ] || [ "$net" = pooled-ensemble ]; then
  data=build/distill-$net
  [ -f $data/train.jsonl ] || python3 -c "import json; from service.object2vec.teacher import build_recipe; \
print(json.dumps(build_recipe('$data', '$net', seed=0)['pair_counts']))"
  mkdir -p build/seed-configs
  cfg=build/seed-configs/bundled-$net-s$seed.json
  python3 - "$net" "$seed" "$cfg" <<'PY'
import json, sys
net, seed, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = json.load(open(f"configs/bundled-{net}.json"))
fix = lambda p: p.replace("../build/", "../../build/")  # the copy lives two folders down
c["channels"] = {k: fix(v) for k, v in c["channels"].items()}
c["auxiliary"], c["tokenizer"] = fix(c["auxiliary"]), fix(c["tokenizer"])
c["seed"], c["output_dir"] = seed, f"../../build/train-{net}-s{seed}"
json.dump(c, open(dst, "w"), indent=2)
PY
  [ -f "build/train-$net-s$seed/checkpoint.pt" ] || o2v train "$cfg" --quiet
  o2v export "build/train-$net-s$seed" "$out" --embedding-dtype int8 --name "$(basename "$out")" \
    --training-data $data/sources.json
  exit 0
fi
[ -f build/distill/train.jsonl ] || o2v distill-data build/distill --seed 0 --gold-repeats 8 --per-band 10
if [ "$net" != pooled ]; then  # sequence encoders start from the trained pooled table
  [ -f build/train-pooled_embedding/checkpoint.pt ] || o2v train configs/bundled-pooled.json
  o2v export-embeddings build/train-pooled_embedding build/distill/vocab.json build/distill/pooled_token_vectors.txt
fi
o2v train "configs/bundled-$net.json"
full=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['hyperparameters']['enc0_network'])" "configs/bundled-$net.json")
o2v export "build/train-$full" "$out" --embedding-dtype int8 --name "$(basename "$out")" \
  --training-data build/distill/sources.json
