#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args]
# GPUS processes on this node (NNODES/NODE_RANK/MASTER_ADDR/PORT for more
# nodes), started by torchrun with the pytorch launcher. Without a GPU the
# processes train on CPU with the gloo backend (MMKDFLOW_DIST_BACKEND to
# choose another). PYTHON picks the interpreter (default: python).
exec "$(dirname "$0")/dist_launch.sh" train.py "$2" "$1" "${@:3}"
