#!/usr/bin/env bash
# Run ON THE DEVICE MACHINE (the device tool), as one prepared call, after benchmarks/gpu_wheels.sh here:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# It checks the CUDA path (graph capture, replay against eager, steady memory), records the PyTorch GPU benchmark,
# then the exported graph on ONNX Runtime's CUDA and TensorRT providers, and a side-by-side table, under $OUT,
# which the tool brings back (at most 8 files). Its image has torch, torchvision, OpenCV (headless), click, tqdm,
# scikit-image, matplotlib, onnx, onnxscript and a CPU-only onnxruntime already.
#
# ONNX Runtime on the GPU needs onnxruntime-gpu built for the machine's CUDA (and TensorRT's libraries for the
# tensorrt provider). Its wheel (about 200 MB, 284 MB unpacked for the CUDA provider alone) is larger than one
# call may carry (64 MiB); where the image lacks it, those two runs end with livecam's one-line error saying
# which provider is missing, and the rest of the check stands.
set -uo pipefail
export PYTHONUNBUFFERED=1 OPENCV_FFMPEG_LOGLEVEL=-8 LIVECAM_CACHE_DIR=/tmp/livecam-cache
OUT=${OUT:-/tmp/livecam-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" \
    | tee -a "$OUT/gpu.txt"
# 1. Correctness on the GPU: the CUDA tests (graph vs eager, GPU vs CPU maps, memory over 200 frames).
timeout 200 python3 -m pytest -q -x -p no:cacheprovider tests/test_device_step.py tests/test_cams.py \
    tests/test_engine.py tests/test_views.py -k "cuda or gpu or graph" 2>&1 | tee "$OUT/pytest-gpu.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_runtime_engine.py -k cuda 2>&1 \
    | tee -a "$OUT/pytest-gpu.txt"
# 2. The PyTorch engine: ResNet-50 fp16 batch 1 on a 1080p frame, then EfficientNet-Lite0.
bench() { timeout 100 python3 -m livecam bench --size 1920x1080 --frames 500 --startup 3 "$@"; }
bench --device cuda --model resnet50 --weights random --precision fp16 --no-peer \
    --label "H200 PyTorch ResNet-50 fp16" --json "$OUT/bench-gpu-torch-resnet50-fp16-1080p.json"
bench --device cuda --model efficientnet_lite0 --precision fp16 --peer \
    --label "H200 PyTorch Lite0 fp16" --json "$OUT/bench-gpu-torch-lite0-fp16-1080p.json"
# 3. ONNX Runtime: the exported Lite0 graph on the CUDA provider (IO binding) and on TensorRT (fp16, engine cache).
python3 -m livecam export --output /tmp/lite0.onnx
bench --device cuda --model /tmp/lite0.onnx --label "H200 ORT CUDA Lite0" \
    --json "$OUT/bench-gpu-ort-cuda-lite0-1080p.json"
bench --device tensorrt --model /tmp/lite0.onnx --label "H200 ORT TensorRT Lite0" \
    --json "$OUT/bench-gpu-ort-tensorrt-lite0-1080p.json"
python3 -m livecam bench --compare "$OUT"/bench-*.json --markdown "$OUT/compare-gpu.md"
