"""``FMKTConnector``: the one registered name for both FM-KT connectors."""
from typing import Mapping, Union

import torch.nn as nn

from mmkdflow.registry import MODELS
from .fmkt_feature_connector import FMKTFeatureConnector
from .fmkt_logit_connector import FMKTLogitConnector

#: Arguments that only the logit flow takes (``head_mode=True``).
LOGIT_ONLY = ('num_classes', 'head_pool', 'ce_weight', 'online',
              'label_smoothing', 'class_weight', 'flow_weight')


def build_fmkt_connector(channels: int,
                         meta_encoder: Union[str, dict, nn.Module, None] = None,
                         *,
                         head_mode: bool = False,
                         **kwargs) -> Union[FMKTFeatureConnector,
                                            FMKTLogitConnector]:
    """Build the FM-KT connector a config asks for, registered as
    ``FMKTConnector``.

    ``head_mode=False`` (default) builds an :class:`FMKTFeatureConnector`
    (feature flow, FM-KT-Theta with ``theta=True``); ``head_mode=True``
    builds an :class:`FMKTLogitConnector` (logit flow, FM-KT-Theta with
    ``theta=True``, OFM-KT with ``online=True``), where a one-entry
    ``level_weights=[w]`` is read as ``flow_weight=w``. Configs may also
    name the two classes directly.

    Args:
        channels: Student channels C.
        meta_encoder: The meta-encoder (``None``: the chosen connector's
            default, ``'convnext'`` for features, ``'mlp'`` for logits).
        head_mode: Logit flow instead of feature flow.
        **kwargs: The chosen connector's arguments.

    Raises:
        ValueError: For an argument the chosen connector does not take.
    """
    if meta_encoder is not None:
        kwargs['meta_encoder'] = meta_encoder
    if not head_mode:
        wrong = [k for k in LOGIT_ONLY if k in kwargs]
        if wrong:
            raise ValueError(f'FMKTConnector: {", ".join(wrong)} apply to '
                             f'the logit flow only; set head_mode=True (or '
                             f'type=\'FMKTLogitConnector\')')
        return FMKTFeatureConnector(channels, **kwargs)
    if kwargs.pop('teacher_proj', None) is not None or \
            kwargs.pop('num_levels', None) not in (None, 1):
        raise ValueError('FMKTConnector(head_mode=True) has one flow on one '
                         'tensor and no teacher projection: remove '
                         'teacher_proj and num_levels')
    kwargs.pop('share_across_levels', None)  # one flow: nothing to share
    level_weights = kwargs.pop('level_weights', None)
    if level_weights is not None:
        if len(level_weights) != 1 or 'flow_weight' in kwargs:
            raise ValueError(
                f'FMKTConnector(head_mode=True) has one flow: give its weight '
                f'as flow_weight=w (or level_weights=[w]), got level_weights='
                f'{list(level_weights)}')
        kwargs['flow_weight'] = level_weights[0]
    return FMKTLogitConnector(channels, **kwargs)


def _identity_at_inference_for(cfg: Mapping) -> bool:
    """``FMKTConnector``'s declaration: that of the class ``cfg`` builds
    (``head_mode``: the logit flow, else the feature flow)."""
    cls = FMKTLogitConnector if cfg.get('head_mode', False) \
        else FMKTFeatureConnector
    return cls.identity_at_inference_for(cfg)


build_fmkt_connector.identity_at_inference_for = _identity_at_inference_for

#: The registered name configs use; a builder, not a class (use
#: :class:`~mmkdflow.models.connectors.BaseFMKTConnector` for isinstance).
FMKTConnector = build_fmkt_connector
MODELS.register_module(name='FMKTConnector', module=build_fmkt_connector)
