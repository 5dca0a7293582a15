#!/usr/bin/env bash
# Usage: tools/dist_launch.sh SCRIPT GPUS [SCRIPT args]
# What tools/dist_train.sh and tools/dist_test.sh share: GPUS processes of
# tools/SCRIPT on this node (NNODES/NODE_RANK/MASTER_ADDR/PORT for more
# nodes), started by torchrun with the pytorch launcher. PYTHON picks the
# interpreter (default: python).
SCRIPT=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec $PYTHON -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")/$SCRIPT" \
    "${@:3}" \
    --launcher pytorch
