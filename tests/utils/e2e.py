"""Helpers of the end-to-end tests: small real configs, the tools loaded as
modules, and subprocess checks."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import textwrap

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

SMALL_DATA = dict(
    det=dict(seed=0, num_train=24, num_val=8, image_size=64),
    seg=dict(seed=0, num_train=16, num_val=8, image_size=64),
    # the cls builder always writes every source digit (1,437 train and 360
    # val crops); num_train/num_val pick evenly spread subsets of them through
    # the dataset's ``indices`` (every class stays present)
    cls=dict(seed=0, num_train=64, num_val=32),
)


def _spread_indices(total: int, num: int) -> list:
    return sorted({i * total // num for i in range(num)})


def _cls_subsets(options: dict) -> dict:
    from mmkdflow.datasets import split_source_indices
    digits_options = {k: v for k, v in options.items()
                      if k not in ('num_train', 'num_val')}
    train, val = split_source_indices(
        digits_options.get('seed', 0), digits_options.get('val_fraction', 0.2))
    return dict(
        digits_options=digits_options,
        train=_spread_indices(len(train), options['num_train']),
        val=_spread_indices(len(val), options['num_val']))


def resize_det_pipeline(dataset: dict, size: int) -> None:
    """Make every ``Resize`` of a DigitsDet dataset config's pipeline
    resize to ``size`` x ``size`` (the canvas size its data is built at)."""
    for transform in dataset.pipeline:
        if transform.type == 'Resize':
            transform.scale = (size, size)


def shrink(cfg: Config, task: str, data_root: str, work_dir: str,
           batch_size: int = 4) -> Config:
    """Point a demo config at small data and a short single-process run."""
    options = SMALL_DATA[task]
    subsets = _cls_subsets(options) if task == 'cls' else None
    cfg.work_dir = work_dir
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = batch_size
        loader.dataset.data_root = data_root
        loader.dataset.digits_options = options
        if subsets is not None:
            loader.dataset.digits_options = subsets['digits_options']
            loader.dataset.indices = subsets[
                'train' if name == 'train_dataloader' else 'val']
        if task == 'det':
            resize_det_pipeline(loader.dataset, options['image_size'])
    if task == 'det':
        for name in ('val_evaluator', 'test_evaluator'):
            cfg[name].ann_file = osp.join(data_root, 'annotations/val.json')
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.pop('visualization', None)
    cfg.log_level = 'WARNING'
    return cfg


def load_tool(name: str):
    """``tools/<name>.py`` imported as a module (the tools are scripts, not
    a package), to call its functions in-process."""
    spec = importlib.util.spec_from_file_location(
        f'mmkdflow_tool_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_without_mmkdflow(code: str) -> str:
    """Run ``code`` in a fresh interpreter where ``import mmkdflow`` fails,
    as on a machine without the plugin; return its stdout."""
    prelude = 'import sys\nsys.modules["mmkdflow"] = None\n'
    env = dict(os.environ, PYTHONPATH='')
    proc = subprocess.run(
        [sys.executable, '-c', prelude + textwrap.dedent(code)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(
            f'subprocess failed:\n{proc.stdout}\n{proc.stderr[-4000:]}')
    return proc.stdout


def run_tool(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
        timeout=600)
    if proc.returncode != 0:
        raise AssertionError(
            f'{args} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}')
    return proc.stdout
