#!/usr/bin/env bash
# The GPU check: one prepared call on the device machine, which is lent rarely and for minutes, so it must work
# the first time. Before it, HERE, in the checkout that calls the device tool:
#   bash benchmarks/gpu_wheels.sh                       # the wheels the image lacks, into .whl/
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh    # the dry run (below); after every change to this script
# Then, with the device tool:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=480)
#
# Steps, in order of worth: the machine (torch, CUDA, the GPU, ONNX Runtime's providers); that every module the
# check needs imports; the CUDA tests (graph replay against eager, GPU against CPU maps, steady memory over 200
# frames); the PyTorch engine's benchmark, ResNet-50 fp16 (random weights) and EfficientNet-Lite0 fp16 with the
# pytorch-grad-cam peer, both at 1080p, and torchvision's ViT-B/16 (tokens) fp16; `livecam export` of Lite0; that
# graph on ONNX Runtime's CUDA provider (IO binding) and TensorRT provider (fp16, engine cache); Lite0 exported in
# int8 (calibrated on the demo clip) on TensorRT's int8 path; --smooth on CUDA and a graph of three methods on
# ONNX Runtime CUDA (issue 19); a --compare table of the reports, in the log. The image's onnxruntime is CPU-only, and onnxruntime-gpu's wheel is larger than one call may carry
# (64 MiB), so until an image has it the three ONNX Runtime runs end with livecam's one-line error naming the missing
# provider, and that is expected.
#
# Each step runs whatever the others did (set -u and pipefail, not -e), within its own time limit and the
# whole check's (GPU_CHECK_BUDGET_S, default 540 s, under the call's timeout_s so that the summary is written).
# A step's verdict: ok (exit 0), refused (exit 2 with livecam's one-line error), timeout, or FAIL (any other
# exit, or a Python traceback or "internal error" in its output). On the device LIVECAM_DEBUG=1 turns an internal
# error into its traceback, for the log. What comes back under $OUT (the tool brings back 8 files at most):
#   gpu-check.log   every step's command and output      summary.txt   one line per step, and the verdicts
#   bench-gpu-*.json  the six benchmark reports (the --compare table is in the log)
# The exit code is 1 if any step's verdict is not the expected one, or $OUT would not come back whole.
#
# GPU_CHECK_DRY_RUN=1: the same steps on this machine, without a GPU, in a Python 3.12 virtual environment with
# only the image's packages (benchmarks/gpu_image.txt; every package in it must be one of
# gpu_image_packages.txt), the carried wheels installed as the device installs them. Each step that needs CUDA
# must end with pytest's skips or livecam's one-line error, never a traceback; the others must pass. The first
# run downloads about 2.8 GB of wheels (torch's CUDA build and its libraries) into
# ${GPU_CHECK_DRY_CACHE:-~/.cache/livecam/gpu-dry-run} and makes the environment there (5.3 GB); later runs
# reuse both (GPU_CHECK_DRY_FRESH=1 makes the environment anew). benchmarks/README.md gives the measured cost.
# GPU_CHECK_LIST=1: print each step (name, kind, time limit, command) without running anything; the tests parse it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
MODE=device
[ "${GPU_CHECK_DRY_RUN:-0}" = 1 ] && MODE=dry
[ "${GPU_CHECK_LIST:-0}" = 1 ] && MODE=list
BUDGET=${GPU_CHECK_BUDGET_S:-540}
RESERVE=15  # seconds kept for the summary
MiB=$((1024 * 1024))

# --- the dry run's stand-in for the device image ------------------------------------------------------------------
norm_names() { sed -e 's/==.*//' -e 's/[[:space:]]*#.*//' -e '/^$/d' | tr 'A-Z_.' 'a-z--'; }

dry_env() {
    local cache=${GPU_CHECK_DRY_CACHE:-$HOME/.cache/livecam/gpu-dry-run} recipe=benchmarks/gpu_image.txt
    local venv py stamp extra
    venv=$cache/venv
    py=${GPU_CHECK_PYTHON:-$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null \
                             | sort -V | tail -1)}
    [ -n "$py" ] || py=$(command -v python3.12)
    if ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
        echo "gpu_check: the dry run needs Python 3.12, the device's (pyenv install 3.12, or GPU_CHECK_PYTHON=...)"
        exit 1
    fi
    # the wheels first, with this machine's pip and Python (the device's platform, not this one's)
    bash benchmarks/gpu_wheels.sh --check 2>/dev/null || bash benchmarks/gpu_wheels.sh || exit 1
    stamp=$({ "$py" -V; cat "$recipe"; } | sha256sum | cut -c1-16)
    if [ "${GPU_CHECK_DRY_FRESH:-0}" = 1 ] || [ "$(cat "$venv/.recipe" 2>/dev/null)" != "$stamp" ]; then
        echo "gpu_check: making the image's stand-in in $venv ($("$py" -V) from $py)"
        rm -rf "$venv" && "$py" -m venv "$venv" || exit 1
        # from the wheels already downloaded where they suffice, else download the missing ones first (pip's
        # warnings that this machine's local indexes hold none of them are left out)
        "$venv/bin/python" -m pip install -q --no-index --find-links "$cache/wheels" -r "$recipe" 2>/dev/null \
            || { "$venv/bin/python" -m pip download -q -d "$cache/wheels" -r "$recipe" \
                     2> >(grep -v '^WARNING: Location .* is ignored' >&2) \
                 && "$venv/bin/python" -m pip install -q --no-index --find-links "$cache/wheels" -r "$recipe"; } \
            || exit 1
        echo "$stamp" > "$venv/.recipe"
    fi
    extra=$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | norm_names \
            | grep -vxF -f <(norm_names < benchmarks/gpu_image_packages.txt))
    if [ -n "$extra" ]; then
        echo "gpu_check: $venv holds packages that the device image lacks: $(echo $extra)"
        exit 1
    fi
    export PATH="$venv/bin:$PATH" VIRTUAL_ENV=$venv PIP_CONFIG_FILE=/dev/null  # pip as on the device: no index
    unset PIP_FIND_LINKS PYTHONHOME
}

# --- the steps -------------------------------------------------------------------------------------------------------
case $MODE in
    device) OUT=${OUT:-/tmp/livecam-gpu}; WORK=$(mktemp -d /tmp/livecam-gpu-work.XXXXXX); SITE=/tmp/site
            export LIVECAM_DEBUG=1 ;;
    dry)    dry_env
            OUT=$(mktemp -d /tmp/livecam-gpu-dry-out.XXXXXX); WORK=$(mktemp -d /tmp/livecam-gpu-dry.XXXXXX)
            SITE=$WORK/site ;;
    list)   OUT='$OUT' WORK='$WORK' SITE=/tmp/site ;;
esac
LOG=$OUT/gpu-check.log
SUMMARY=$OUT/summary.txt
if [ "$MODE" != list ]; then
    mkdir -p "$OUT" || exit 1
    export PYTHONUNBUFFERED=1 OPENCV_FFMPEG_LOGLEVEL=-8 LIVECAM_CACHE_DIR=$WORK/cache PYTHONPATH="$ROOT:$SITE"
    echo "gpu_check ($MODE run) on $(hostname), $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null)," \
         "python3 $(command -v python3); results in $OUT" | tee "$LOG"
fi
START=$SECONDS
RESULTS=()
UNEXPECTED=0

# "VERDICT|why" from a step's exit code and output: ok, refused (livecam's one-line error), timeout or FAIL
verdict() {
    if grep -q -e 'Traceback (most recent call last)' -e 'livecam: error: internal error' "$2"; then
        echo "FAIL|a traceback or internal error (exit $1)"
    elif [ "$1" = 0 ]; then echo "ok|"
    elif [ "$1" = 124 ] || [ "$1" = 137 ]; then echo "timeout|"
    elif [ "$1" = 2 ] && grep -q '^livecam: error: ' "$2"; then echo "refused|$(grep -m1 '^livecam: error: ' "$2" | cut -c1-200)"
    else echo "FAIL|exit $1"
    fi
}

# Which verdicts each kind of step may have: plain steps need no GPU and must pass everywhere; cuda steps must pass
# on the device and, in the dry run, end with pytest's skips or livecam's one-line error; ortgpu steps (ONNX
# Runtime's GPU providers) may be refused on the device too, while its onnxruntime is CPU-only.
expected() {
    case "$MODE:$1:$2" in
        *:*:ok | dry:cuda:refused | *:ortgpu:refused) return 0 ;;
    esac
    return 1
}

record() {  # NAME KIND VERDICT SECONDS [NOTE]
    local mark=expected
    if ! expected "$2" "$3"; then mark=UNEXPECTED; UNEXPECTED=$((UNEXPECTED + 1)); fi
    RESULTS+=("$(printf '%-22s %-7s %-8s %4ss  %s%s' "$1" "$2" "$3" "$4" "$mark" "${5:+: $5}")")
}

step() {  # NAME KIND LIMIT_S COMMAND...
    local name=$1 kind=$2 limit=$3 rc text left t0 result note
    shift 3
    if [ "$MODE" = list ]; then
        printf 'step %s %s %s' "$name" "$kind" "$limit"; printf ' %q' "$@"; echo
        return
    fi
    left=$((BUDGET - RESERVE - (SECONDS - START)))
    if [ "$left" -lt 10 ]; then
        record "$name" "$kind" skipped 0 "no time left of GPU_CHECK_BUDGET_S=$BUDGET"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    text=$WORK/step-$name.txt
    t0=$SECONDS
    echo "=== $name ($kind, up to ${limit}s):$(printf ' %q' "$@")" | tee -a "$LOG"
    timeout -k 10 "$limit" "$@" < /dev/null 2>&1 | tee "$text" | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    result=$(verdict "$rc" "$text")
    note=${result#*|} result=${result%%|*}
    # A CUDA test step passes the dry run by skipping its CUDA tests (so it must have reached them), and the
    # device by running them: there a skipped one means torch saw no GPU.
    if [ "$result" = ok ] && [ "$1 $2 $3" = "python3 -m pytest" ]; then
        if [ "$MODE" = dry ] && [ "$kind" != plain ] && ! grep -q '^SKIPPED' "$text"; then
            result=FAIL note="no test skipped: the selection found no CUDA test"
        elif [ "$MODE" = device ] && [ "$kind" = cuda ] && grep -q '^SKIPPED' "$text"; then
            result=FAIL note="CUDA tests skipped on the GPU machine: $(grep -m1 '^SKIPPED' "$text" | cut -c1-120)"
        fi
    fi
    echo "=== $name: $result after $((SECONDS - t0)) s" | tee -a "$LOG"
    record "$name" "$kind" "$result" "$((SECONDS - t0))" "$note"
}

PYTEST=(python3 -m pytest -q -p no:cacheprovider)
BENCH=(python3 -m livecam bench --size 1920x1080 --frames 500 --startup 3)

step install plain 120 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl
step machine plain 60 python3 benchmarks/gpu_probe.py machine
step imports plain 120 python3 benchmarks/gpu_probe.py imports
# 1. Correctness on the GPU: the CUDA tests.
step pytest-cuda cuda 240 "${PYTEST[@]}" tests/engines/pytorch/test_device_step.py tests/cams/test_gradient.py \
    tests/engines/pytorch/test_engine.py tests/engines/pytorch/test_views.py -k "cuda or gpu or graph"
step pytest-ort-cuda ortgpu 120 "${PYTEST[@]}" tests/engines/runtime/test_engine.py -k cuda
# 2. The PyTorch engine: ResNet-50 fp16 batch 1 on a 1080p frame, then EfficientNet-Lite0 with the peer.
step bench-torch-resnet50 cuda 150 "${BENCH[@]}" --device cuda --model resnet50 --weights random \
    --precision fp16 --no-peer --label "H200 PyTorch ResNet-50 fp16" --json "$OUT/bench-gpu-torch-resnet50-fp16-1080p.json"
step bench-torch-lite0 cuda 180 "${BENCH[@]}" --device cuda --model efficientnet_lite0 --precision fp16 --peer \
    --label "H200 PyTorch Lite0 fp16" --json "$OUT/bench-gpu-torch-lite0-fp16-1080p.json"
# 2b. A vision transformer's tokens on the PyTorch engine's CUDA path (the layout hook inside the CUDA graph):
#    torchvision's ViT-B/16 (random weights), Grad-CAM at its default layer encoder_layer_11.ln_1, fp16.
step bench-torch-vit cuda 120 "${BENCH[@]}" --frames 200 --startup 1 --device cuda --model vit_b_16 \
    --weights random --precision fp16 --no-peer --label "H200 PyTorch ViT-B/16 fp16" \
    --json "$OUT/bench-gpu-torch-vit-fp16-1080p.json"
# 3. ONNX Runtime: the exported Lite0 graph on the CUDA provider (IO binding) and on TensorRT (fp16, engine cache).
step export-lite0 plain 150 python3 -m livecam export --output "$WORK/lite0.onnx"
step bench-ort-cuda ortgpu 120 "${BENCH[@]}" --device cuda --model "$WORK/lite0.onnx" --label "H200 ORT CUDA Lite0" \
    --json "$OUT/bench-gpu-ort-cuda-lite0-1080p.json"
step bench-ort-tensorrt ortgpu 180 "${BENCH[@]}" --device tensorrt --model "$WORK/lite0.onnx" \
    --label "H200 ORT TensorRT Lite0" --json "$OUT/bench-gpu-ort-tensorrt-lite0-1080p.json"
# 3b. int8: Lite0's model part quantized (QDQ) on the demo clip, the maps in fp32, on TensorRT's int8 path.
step export-lite0-int8 plain 150 python3 -m livecam export --precision int8 --calibrate demo \
    --output "$WORK/lite0-int8.onnx"
step bench-ort-tensorrt-int8 ortgpu 150 "${BENCH[@]}" --device tensorrt --model "$WORK/lite0-int8.onnx" \
    --label "H200 ORT TensorRT Lite0 int8" --json "$OUT/bench-gpu-ort-tensorrt-lite0-int8-1080p.json"
# 3c. Issue 19 (made for video): --smooth on the PyTorch engine's CUDA path (the device step is skipped while
#     smoothing: the steady maps are averaged on the CPU), and a graph of three methods on ONNX Runtime CUDA, opened
#     cut to the method drawn (a session from bytes, not a file; livecam.engines.runtime.session.pruned_graph).
step run-torch-smooth cuda 90 python3 -m livecam --source demo --device cuda --smooth 0.25 --max-frames 96 \
    --no-show --output "$WORK/smooth.mp4" --log "$WORK/smooth.jsonl"
step export-lite0-three plain 150 python3 -m livecam export --method gradcam,cam,eigencam --topk 3 \
    --output "$WORK/lite0-three.onnx"
step run-ort-cuda-three ortgpu 90 python3 -m livecam --source demo --model "$WORK/lite0-three.onnx" \
    --method eigencam --device cuda --max-frames 96 --no-show --output "$WORK/three.mp4"
# 4. The reports side by side. The dry run has none of its own (each benchmark ends at its first CUDA call), so it
#    compares the committed CPU reports instead, to run the same command.
REPORTS=()
[ "$MODE" = device ] && for f in "$OUT"/bench-gpu-*.json; do [ -f "$f" ] && REPORTS+=("$f"); done
[ "$MODE" = device ] || REPORTS=(benchmarks/results/bench-epyc-2core-lite0-720p.json
                                 benchmarks/results/bench-epyc-2core-lite0-360p.json)
if [ "${#REPORTS[@]}" -gt 0 ]; then
    # the table goes to the log (gpu-check.log), as the device tool brings back 8 files: rebuild it from the reports
    step compare plain 30 python3 -m livecam bench --compare "${REPORTS[@]}" --markdown "$WORK/compare-gpu.md"
else
    record compare plain skipped 0 "no benchmark wrote a report"
fi

# --- the summary, and what the device tool would bring back -------------------------------------------------------
if [ "$MODE" = list ]; then
    echo "out gpu-check.log"; echo "out summary.txt"
    exit 0
fi
# checked after the summary is written, so that the summary counts itself
out_problems() {
    local files total big odd deep
    files=$(find "$OUT" -type f | wc -l)
    total=$(du -sb "$OUT" | cut -f1)
    big=$(find "$OUT" -type f -size +16M -printf '%P ')
    odd=$(find "$OUT" -mindepth 1 -printf '%P\n' | grep -v '^[A-Za-z0-9._/-]*$' | tr '\n' ' ')
    deep=$(find "$OUT" -mindepth 4 -type f -printf '%P ')
    [ "$files" -le 8 ] || echo "$OUT holds $files files; the device tool brings back 8"
    [ "$total" -le $((64 * MiB)) ] || echo "$OUT holds $((total / MiB)) MiB; the device tool brings back 64"
    [ -z "$big" ] || echo "over 16 MiB, so left behind: $big"
    [ -z "$odd" ] || echo "names the device tool does not bring back: $odd"
    [ -z "$deep" ] || echo "more than two folders down, so left behind: $deep"
}
{
    echo "gpu_check ($MODE run): $((SECONDS - START)) s of a ${BUDGET} s budget; verdicts (see gpu-check.log):"
    printf '%s\n' "${RESULTS[@]}"
} > "$SUMMARY"
problems=$(out_problems)
if [ -n "$problems" ]; then
    echo "$problems" | sed 's/^/UNEXPECTED: /' >> "$SUMMARY"
    UNEXPECTED=$((UNEXPECTED + 1))
fi
echo "$UNEXPECTED unexpected verdict(s)" >> "$SUMMARY"
echo | tee -a "$LOG"
tee -a "$LOG" < "$SUMMARY"
[ "$MODE" = dry ] && echo "the dry run's files: $OUT"
rm -rf "$WORK"
[ "$UNEXPECTED" = 0 ]
