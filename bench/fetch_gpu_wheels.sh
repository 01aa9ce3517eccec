#!/usr/bin/env bash
# usage: bash bench/fetch_gpu_wheels.sh      (here, before a GPU check; then carry .whl to the GPU machine)
# The lent GPU machines' image has torch, transformers 5.17, peft, accelerate, sentence-transformers, pyarrow,
# xxhash, but no trl, datasets or fire and no network: this downloads what bench/gpu_check.sh installs there
# (the same versions as requirements.txt where it matters: transformers 5.x renamed the decoding cache argument;
# huggingface-hub below 2, which the image's sentence-transformers needs), and SmolLM2's tokenizer.
# The all-MiniLM wheel (84 MB) is over the 64 MiB a device call carries: the check grounds with a small random
# stand-in embedder instead (bench/random_model.py --shape embedder), which times grounding, not its quality.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl \
  trl==1.16.0 datasets==5.2.0 fire==0.7.1 termcolor dill multiprocess \
  transformers==5.24.0 tokenizers==0.23.3 'huggingface-hub<2' peft==0.21.2 accelerate==1.15.0
# A real BPE tokenizer for the random models (3.5 MB; the SmolLM2 weights are far over what a call carries).
python3 -m utils.pretrained --name smollm2 >/dev/null
mkdir -p .whl/tokenizer
cp models/pretrained/SmolLM2-135M-Instruct/{tokenizer.json,tokenizer_config.json,chat_template.jinja} .whl/tokenizer/
ls -la .whl
