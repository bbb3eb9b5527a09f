#!/usr/bin/env bash
# The GPU checks and measurements of BENCHMARKS.md in one short run (about 8 minutes on one H100/H200):
# the CUDA tests, the step-cost ratio (fp32 and bf16 autocast), the style objective's speed at the
# paper's 128x128 crops, and the Gaussian benchmark at D = 256, 512, 1024 under a time limit each.
#   OUT=gpu_results bash benchmarks/gpu_checks.sh
set -u
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
GL_LIMIT=${GL_LIMIT:-75}
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout 150 python3 -m pytest tests/test_cuda.py tests/test_fast_step.py -q -p no:cacheprovider 2>&1 | tail -15 | tee "$OUT/tests.txt"
timeout 100 python3 benchmarks/step_cost.py --device cuda --bf16 --dims 16 64 256 1024 --repeats 3 | tee "$OUT/step_cost.md"
timeout 60 python3 benchmarks/style_speed.py --device cuda --crops 64 128 --features 32 128 --steps 10 | tee "$OUT/style_speed.md"
timeout $((4 * GL_LIMIT + 60)) python3 benchmarks/gaussian_large.py --device cuda --dims 256 512 1024 \
    --time-limit "$GL_LIMIT" --iterations 8000 --lr 1e-3 --lr-schedule cosine --ema-decay 0.99 \
    --pretrain-iterations 500 --log-every 500 --out "$OUT" | tee "$OUT/gaussian_large.md"
