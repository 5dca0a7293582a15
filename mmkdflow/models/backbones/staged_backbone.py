"""A backbone of a stem and stages run in order, returning the outputs of
``out_indices``, with frozen stages and ``norm_eval``: MobileNetV1 and the
CIFAR distillation zoo."""
from typing import List, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


def normalise_out_indices(out_indices: Union[int, Sequence[int]],
                          num_stages: int) -> Tuple[int, ...]:
    """``out_indices`` as a tuple of non-negative stage indices.

    Returns:
        tuple[int]: The stage indices.

    Raises:
        ValueError: If it is empty or holds an index outside
            ``-num_stages .. num_stages - 1``.
    """
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    out_indices = tuple(out_indices)
    if not out_indices or any(
            not isinstance(i, int) or not -num_stages <= i < num_stages
            for i in out_indices):
        raise ValueError(
            f'out_indices must be a non-empty list of stage indices in '
            f'{-num_stages}..{num_stages - 1}, got {out_indices}')
    return tuple(i % num_stages for i in out_indices)


class StagedBackbone(BaseModule):
    """Base of the backbones made of a stem and stages.

    A subclass builds its layers and hands them to :meth:`set_layers`: the
    stem (``self.stem``) and the stages (``self.layer1`` ...). ``forward``
    runs them in order and returns the outputs of the stages in
    ``out_indices`` as a tuple.

    Args:
        num_stages (int): Number of stages of the subclass.
        out_indices (int | Sequence[int]): Stages whose outputs are
            returned (negative indices count from the last stage).
        frozen_stages (int): ``-1`` freezes nothing, ``0`` the stem,
            ``i > 0`` the stem and stages ``0 .. i - 1`` (parameters fixed,
            norms in eval mode). Defaults to -1.
        norm_eval (bool): Keep every BatchNorm in eval mode while training.
            Defaults to False.
        init_cfg (dict | list[dict], optional): MMEngine initialisation
            config. Defaults to None.

    Raises:
        ValueError: For ``out_indices`` or ``frozen_stages`` out of range.
    """

    def __init__(self,
                 num_stages: int,
                 out_indices: Union[int, Sequence[int]],
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.out_indices = normalise_out_indices(out_indices, num_stages)
        if frozen_stages not in range(-1, num_stages + 1):
            raise ValueError(f'frozen_stages must be in -1..{num_stages}, '
                             f'got {frozen_stages}')
        self.num_stages = num_stages
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.stage_names: List[str] = []

    def set_layers(self, stem: nn.Module, stages: Sequence[nn.Module],
                   stem_name: str = 'stem') -> None:
        """Register the stem and the stages (``layer1`` .. ``layerN``).

        Args:
            stem (nn.Module): The layers before the first stage.
            stages (Sequence[nn.Module]): One module per stage.
            stem_name (str): The stem's attribute, which names its weights
                in checkpoints. Defaults to 'stem'.
        """
        if len(stages) != self.num_stages:
            raise ValueError(f'{type(self).__name__} declared '
                             f'{self.num_stages} stages, got {len(stages)}')
        self.add_module(stem_name, stem)
        self.stem_name = stem_name
        self.stage_names = []
        for i, stage in enumerate(stages):
            name = f'layer{i + 1}'
            self.add_module(name, stage)
            self.stage_names.append(name)
        self._freeze_stages()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The outputs of the stages in ``out_indices``.

        Returns:
            tuple[Tensor]: One feature map per entry of ``out_indices``.
        """
        x = getattr(self, self.stem_name)(x)
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [getattr(self, self.stem_name)] + [
            getattr(self, name)
            for name in self.stage_names[:self.frozen_stages]
        ]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'StagedBackbone':
        """Train mode that keeps frozen stages (and, with ``norm_eval``,
        every BatchNorm) in eval mode.

        Returns:
            StagedBackbone: The module itself.
        """
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
