#!/usr/bin/env bash
# Create or repair the project's virtual environment (.venv).
#
# Every step is verified by importing what it installed, so a half-finished
# environment (an interrupted mmcv build, a missing package, a wrong version)
# is detected and repaired instead of trusted. Safe to run any number of times.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
PY="$VENV/bin/python"
PIP="$PY -m pip"
log() { printf '[setup_env] %s\n' "$*"; }

if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null; then
  log "creating virtual environment $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi

check() { "$PY" - <<PYEOF 2>/dev/null
$1
PYEOF
}

# 1. build tools
if ! check "
import importlib.metadata as m, setuptools, wheel, ninja
v = tuple(int(x) for x in setuptools.__version__.split('.')[:2])
assert (77, 0) <= v < (81, 0)"; then
  log "installing build tools"
  $PIP install -q --upgrade pip
  $PIP install -q -r requirements/build.txt
fi

# 2. torch + torchvision (standard registry build, not the local +cpu wheel)
if ! check "
import torch, torchvision
assert torch.__version__.split('+')[0] == '2.13.0' and '+cpu' not in torch.__version__, torch.__version__
assert torchvision.__version__.split('+')[0] == '0.28.0'"; then
  log "installing torch 2.13.0 and torchvision 0.28.0 (large download)"
  $PIP install -q "torch==2.13.0,!=2.13.0+cpu" "torchvision==0.28.0"
fi

# 3. mmcv 2.1.0 with compiled ops
if ! check "
import mmcv, mmcv.ops, torch
assert mmcv.__version__ == '2.1.0'
from mmcv.ops import nms
b = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]); s = torch.tensor([0.9, 0.8])
nms(b, s, 0.5)"; then
  log "building mmcv 2.1.0 with ops from source (about 11 minutes on 2 cores)"
  $PIP uninstall -y -q mmcv mmcv-lite mmcv-full >/dev/null 2>&1 || true
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1; then
    FORCE_CUDA=1
  else
    FORCE_CUDA=0
  fi
  log "FORCE_CUDA=$FORCE_CUDA"
  MMCV_WITH_OPS=1 FORCE_CUDA=$FORCE_CUDA MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    $PIP install -q --no-build-isolation "mmcv==2.1.0"
fi

# 4. the OpenMMLab packages, test tools and the plugin itself
if ! check "
import importlib.metadata as m
want = {'mmengine': '0.10.7', 'mmdet': '3.3.0', 'mmsegmentation': '1.2.2', 'mmpretrain': '1.2.0'}
for k, v in want.items():
    assert m.version(k) == v, k
import mmdet.models, mmseg.models, mmpretrain.models, pycocotools, sklearn, matplotlib, pytest, mmkdflow
assert m.version('mmcv') == '2.1.0'
import torch; assert torch.__version__.split('+')[0] == '2.13.0'
assert any(r.startswith('mmengine') for r in m.requires('mmkdflow') or [])"; then
  log "installing mmengine, mmdet, mmsegmentation, mmpretrain, test tools and mmkdflow"
  $PIP install -q -c requirements/lock.txt -r requirements/runtime.txt \
    -r requirements/mminstall.txt -r requirements/demo.txt \
    -r requirements/tests.txt
  $PIP install -q --no-build-isolation --no-deps -e .
fi

check "import mmkdflow, mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models" || { log "environment still broken"; exit 1; }
log "environment ready: $VENV"
