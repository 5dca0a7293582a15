#!/usr/bin/env bash
# Create or reuse a virtual environment at the floor of mmkdflow's supported
# range (requirements/floor.txt), as a user of the prebuilt OpenMMLab 2.x
# stack has it, then install mmkdflow into it the README's way.
#   tools/setup_floor_env.sh VENV lite   torch 2.1.2 + mmcv-lite (no ops)
#   tools/setup_floor_env.sh VENV full   torch 2.1.2 + mmcv 2.1.0 built
#                                        against it, mmdet, mmseg, mmpretrain
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:?venv path}
KIND=${2:?lite or full}
PY="$VENV/bin/python"
PIP="$PY -m pip"
log() { printf '[setup_floor_env] %s\n' "$*"; }
[ -x "$PY" ] || { log "creating $VENV"; python3 -m venv "$VENV"; }
check() { "$PY" -c "$1" 2>/dev/null; }
if ! check "import torch; assert torch.__version__.startswith('2.1.2')"; then
  log "installing torch 2.1.2, torchvision 0.16.2, numpy<2"
  $PIP install -q "setuptools>=77,<81" wheel ninja
  $PIP install -q "torch==2.1.2" "torchvision==0.16.2" "numpy<2" mmengine==0.10.7
fi
if [ "$KIND" = lite ]; then
  check "import mmcv, mmengine, pytest, diffusers" || \
    $PIP install -q "mmcv-lite==2.1.0" -c requirements/floor.txt -r requirements/tests.txt \
      -r requirements/demo.txt
  # mmcv-lite is not the distribution `mmcv` that mmkdflow declares
  $PIP install -q --no-build-isolation --no-deps -e .
else
  if ! check "import mmcv.ops, torch; from mmcv.ops import nms"; then
    # --no-cache-dir: pip's wheel cache would hand back the mmcv wheel built
    # against the default environment's torch 2.13
    log "building mmcv 2.1.0 against torch 2.1.2 (about 11-20 minutes)"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      $PIP install -q --no-cache-dir --no-build-isolation "mmcv==2.1.0"
  fi
  check "import mmdet, mmseg, mmpretrain, pytest, diffusers" || \
    $PIP install -q -c requirements/floor.txt -r requirements/mminstall.txt \
      -r requirements/demo.txt -r requirements/tests.txt
  # the README's install path into an existing OpenMMLab environment
  $PIP install -q --no-build-isolation -v -e . >/dev/null
fi
log "ready: $VENV ($KIND)"
