"""A real MMEngine training checkpoint of a tiny model, written by the
environment that runs this module, to be read by the other end of the
supported range (numpy 1.x / torch 2.1 and numpy 2.x / torch 2.13).

    python tests/utils/portable_checkpoint.py

writes ``tests/fixtures/checkpoints/mmengine_numpy<major>.pth``: one epoch of
:class:`PortableToyModel` trained by MMEngine's ``Runner`` (message hub with
``HistoryBuffer`` and numpy arrays, optimizer state, meta), plus numpy
scalars, arrays and dtypes in ``meta['numpy_objects']``, as MMEngine and
mmdet put them there. Only torch, numpy and mmengine are imported, so the
floor-lite environment writes and reads it too.
"""
import os.path as osp
import pickletools
import sys
import tempfile
import uuid
import zipfile

import numpy as np
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURES = osp.join(TESTS, 'fixtures', 'checkpoints')


@MODELS.register_module(force=True)
class PortableToyModel(BaseModel):
    """A linear regressor: the smallest model a Runner trains."""

    def __init__(self, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.linear = nn.Linear(4, 2)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(torch.stack(inputs) if isinstance(inputs, list)
                          else inputs)
        if mode == 'loss':
            targets = torch.stack(targets) if isinstance(targets, list) \
                else targets
            return dict(loss=((out - targets) ** 2).mean())
        return out


@DATASETS.register_module(force=True)
class PortableToyDataset(torch.utils.data.Dataset):
    """Eight fixed (input, target) pairs."""

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(8, 4, generator=gen)
        self.targets = torch.randn(8, 2, generator=gen)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return dict(inputs=self.inputs[index], targets=self.targets[index])


#: ``meta['numpy_objects']`` of every fixture.
NUMPY_OBJECTS = dict(
    float64=np.float64(0.5), float32=np.float32(1.5), int64=np.int64(7),
    int32=np.int32(-3), bool=np.bool_(True),
    array=np.arange(6, dtype=np.int64).reshape(2, 3),
    floats=np.linspace(0, 1, 4, dtype=np.float32),
    dtype=np.dtype('float16'))


def runner_config(work_dir: str, max_epochs: int = 1, **kwargs) -> dict:
    """The Runner config that trains :class:`PortableToyModel`."""
    cfg = dict(
        model=dict(type='PortableToyModel'),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=dict(type='PortableToyDataset'),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4, num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                          momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        custom_imports=dict(imports=['mmkdflow'],
                            allow_failed_imports=False),
        randomness=dict(seed=0),
        # MMEngine names the visualizer and logger after the experiment:
        # two runners built in the same second would otherwise share them
        # (and a deleted work dir)
        experiment_name=f'portable-{uuid.uuid4().hex}',
        log_level='WARNING')
    cfg.update(kwargs)
    return cfg


def write_checkpoint(path: str) -> None:
    """Train one epoch, add :data:`NUMPY_OBJECTS` to the meta and save the
    checkpoint at ``path``."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    with tempfile.TemporaryDirectory() as work_dir:
        runner = Runner.from_cfg(Config(runner_config(work_dir)))
        runner.train()
        # written by this process a moment ago: safe to load in full
        ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'),
                          map_location='cpu', weights_only=False)
    ckpt['meta']['numpy_objects'] = dict(NUMPY_OBJECTS)
    torch.save(ckpt, path)


def fixture_path(numpy_major: int) -> str:
    """The committed checkpoint written with numpy ``numpy_major``.x."""
    return osp.join(FIXTURES, f'mmengine_numpy{numpy_major}.pth')


def pickled_globals(path: str) -> set:
    """The ``module.name`` globals a torch zip checkpoint's pickle names."""
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith('data.pkl'))
        data = archive.read(name)
    found, strings = set(), []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
            strings.append(arg)
        elif opcode.name == 'GLOBAL':
            found.add(arg.replace(' ', '.'))
        elif opcode.name == 'STACK_GLOBAL':
            found.add(f'{strings[-2]}.{strings[-1]}')
    return found


if __name__ == '__main__':
    out = fixture_path(int(np.__version__.split('.')[0]))
    write_checkpoint(out)
    print(f'wrote {out} (numpy {np.__version__}, torch {torch.__version__})',
          file=sys.stderr)
