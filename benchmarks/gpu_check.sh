#!/usr/bin/env bash
# Run ON THE DEVICE MACHINE (the device tool), as one prepared call, after benchmarks/gpu_wheels.sh here:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# It checks the CUDA path (graph capture, replay against eager, steady memory) and records the GPU
# benchmark tables under $OUT, which the tool brings back. Its image has torch, torchvision, OpenCV
# (headless), click, tqdm, scikit-image and matplotlib already.
set -uo pipefail
export PYTHONUNBUFFERED=1 OPENCV_FFMPEG_LOGLEVEL=-8
OUT=${OUT:-/tmp/livecam-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
# 1. Correctness on the GPU: the CUDA tests (graph vs eager, GPU vs CPU maps, memory over 200 frames).
timeout 240 python3 -m pytest -q -x -p no:cacheprovider tests/test_device_step.py tests/test_cams.py \
    tests/test_engine.py tests/test_views.py -k "cuda or gpu or graph" 2>&1 | tee "$OUT/pytest-gpu.txt"
# 2. The benchmark of issue 3: ResNet-50 fp16 batch 1 on a 1080p frame, then EfficientNet-Lite0.
bench() { timeout 150 python3 -m livecam bench --device cuda "$@"; }
bench --model resnet50 --weights random --precision fp16 --size 1920x1080 --frames 500 \
    --json "$OUT/bench-gpu-resnet50-fp16-1080p.json" --markdown "$OUT/bench-gpu-resnet50-fp16-1080p.md"
bench --model efficientnet_lite0 --precision fp16 --size 1920x1080 --frames 500 --peer \
    --json "$OUT/bench-gpu-lite0-fp16-1080p.json" --markdown "$OUT/bench-gpu-lite0-fp16-1080p.md"
