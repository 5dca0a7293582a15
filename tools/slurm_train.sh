#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#     tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# One task per GPU, started by srun with the slurm launcher (OpenMMLab form;
# see tools/slurm_launch.sh). GPUS_PER_NODE=0: CPU tasks with gloo.
exec "$(dirname "$0")/slurm_launch.sh" train.py "$1" "$2" "$3" \
    --work-dir="$4" "${@:5}"
