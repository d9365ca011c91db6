#!/usr/bin/env bash
# Run HERE, in the checkout that calls the device tool, before a GPU check: the device machine reaches no package
# registry, and its image lacks the packages of benchmarks/gpu_wheels.txt. This puts their wheels into .whl/
# (git-ignored), which the tool's run carries with `carry: [".whl"]`; gpu_check.sh installs them there.
#
#   bash benchmarks/gpu_wheels.sh           # fetch the wheels anew (old ones go: two versions stop the install)
#   bash benchmarks/gpu_wheels.sh --check   # only check .whl/: one wheel per line of the list, each one for
#                                           # the device's Python and platform, and the carry under 64 MiB
#
# The wheels are for the device's Python (3.12, CPython) and platform (manylinux, x86_64), not this machine's:
# pip download --python-version 3.12 --platform ... --only-binary=:all:. manylinux_2_28 is among the platforms
# because the image's own torch 2.11.0 wheel is manylinux_2_28, so its glibc is 2.28 or newer (and PyAV ships
# its current wheels for manylinux_2_28 only; the last manylinux2014 one, 14.2.0, is 40 MB instead of 36).
# A package that PyPI has only as an sdist ("sdist" in the list) is built here; it must build to a pure-Python
# wheel (py3-none-any), which runs anywhere.
#
# The device tool sends the working tree (tracked files and untracked ones that git does not ignore) with the
# carried paths, 64 MiB in all: the check adds them up and fails above that.
set -euo pipefail
cd "$(dirname "$0")/.."
LIST=benchmarks/gpu_wheels.txt
WHL=${GPU_WHEELS_DIR:-.whl}
LIMIT=$((64 * 1024 * 1024))
PLATFORM=(--python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --only-binary=:all:)

# The list's lines as "NAME==VERSION [sdist]", comments and blank lines left out.
entries() { sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^[[:space:]]*$/d' "$LIST"; }

# Does this wheel's file name say it runs on CPython 3.12, manylinux x86_64?
for_device() {
    case "$1" in
        *-cp312-cp312-manylinux*x86_64*.whl | *-cp3[0-9]-abi3-manylinux*x86_64*.whl) return 0 ;;
        *-cp31[0-2]-abi3-manylinux*x86_64*.whl | *-py3-none-any.whl | *-py2.py3-none-any.whl) return 0 ;;
    esac
    return 1
}

# Bytes that one device call would send: the working tree that travels, plus the wheels.
carry_bytes() {
    local tree wheels shared=0
    tree=$(git ls-files -z --cached --others --exclude-standard | grep -zv '^shared/' \
           | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s += $1} END {print s + 0}')
    [ -d shared ] && shared=$(du -sb shared | cut -f1)
    wheels=$(find "$WHL" -maxdepth 1 -type f -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    echo $((tree + shared + wheels))
}

check() {
    local bad=0 name version spec norm files bytes
    [ -d "$WHL" ] || { echo "gpu_wheels: $WHL does not exist: run bash benchmarks/gpu_wheels.sh" >&2; return 1; }
    while read -r spec _; do
        name=${spec%%==*} version=${spec#*==}
        norm=$(echo "$name" | tr 'A-Z-.' 'a-z__')
        files=$(find "$WHL" -maxdepth 1 -type f -iname "${norm}-*.whl" -printf '%f\n')
        if [ "$(echo "$files" | grep -c .)" != 1 ]; then
            echo "gpu_wheels: $WHL should hold one wheel of $name, not: ${files:-none}" >&2; bad=1; continue
        fi
        if [[ "$files" != "${norm}-${version}-"* ]]; then
            echo "gpu_wheels: $files is not $name $version" >&2; bad=1
        fi
        if ! for_device "$files"; then
            echo "gpu_wheels: $files is not for CPython 3.12 on manylinux x86_64" >&2; bad=1
        fi
    done < <(entries)
    local count
    count=$(find "$WHL" -maxdepth 1 -type f -name '*.whl' | grep -c . || true)
    if [ "$count" != "$(entries | grep -c .)" ]; then
        echo "gpu_wheels: $WHL holds $count wheels, the list $(entries | grep -c .): remove the others" >&2; bad=1
    fi
    bytes=$(carry_bytes)
    if [ "$bytes" -gt "$LIMIT" ]; then
        echo "gpu_wheels: the working tree and $WHL come to $((bytes / 1024 / 1024)) MiB, over the device" \
             "tool's 64 MiB" >&2
        bad=1
    fi
    [ "$bad" = 0 ] && echo "gpu_wheels: $WHL is ready: $count wheels; the call carries $((bytes / 1024)) KiB" \
                          "of $((LIMIT / 1024)) KiB"
    return "$bad"
}

if [ "${1:-}" = --check ]; then
    check
    exit
fi
mkdir -p "$WHL"
find "$WHL" -maxdepth 1 -type f -name '*.whl' -delete
while read -r spec how; do
    if [ "$how" = sdist ]; then
        python3 -m pip wheel --quiet --no-deps -w "$WHL" "$spec"
    else
        python3 -m pip download --quiet --no-deps "${PLATFORM[@]}" -d "$WHL" "$spec"
    fi
done < <(entries)
ls -l "$WHL"
check
