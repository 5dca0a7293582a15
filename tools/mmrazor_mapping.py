"""What each piece of an MMRazor 1.x KD config becomes in mmkdflow.

The tables below are the whole mapping; ``tools/convert_mmrazor_config.py``
reads the config and writes the result. A piece without an mmkdflow
counterpart raises :class:`ConversionError` naming it and the nearest
mmkdflow form; every setting that is mapped with a change, or that has no
effect in mmkdflow, is returned as a note (written into the config).
"""
import keyword
import re
from typing import Callable, Dict, List, Optional, Tuple

#: MMRazor algorithms that are a frozen teacher distilling a student, and
#: the ``teacher_forward`` of their mmkdflow ``Distiller`` (``None``:
#: mmkdflow's default ``'auto'``).
ALGORITHMS = {'SingleTeacherDistill': None,
              'FpnTeacherDistill': 'extract_feat'}
#: Settings of those algorithms that need no entry of their own.
ALGORITHM_KEYS = {'type', '_scope_', '_delete_', 'architecture', 'teacher',
                  'teacher_ckpt', 'teacher_trainable', 'teacher_norm_eval',
                  'student_trainable', 'calculate_student_loss',
                  'teacher_module_inplace', 'data_preprocessor', 'distiller'}
DISTILLER_KEYS = {'type', 'student_recorders', 'teacher_recorders',
                  'distill_losses', 'loss_forward_mappings', 'connectors'}
#: The argument of a loss that MMRazor feeds with the labels (a
#: ``ModuleInputs`` recorder of the head's loss module); mmkdflow's losses
#: read them from the step's context.
LABEL_ARG = 'gt_labels'
NEAREST_RECORDER = ("a ModuleOutputs recorder: a distill point reads "
                    "module outputs (student=/teacher= module paths)")
#: The norm of the RTMDet recipe's connectors: a BatchNorm without
#: parameters or running statistics, i.e. a per-channel standardisation.
PLAIN_NORM = {'affine': False, 'track_running_stats': False}
NORM_TYPES = ('BN', 'SyncBN', 'BN2d')


class ConversionError(ValueError):
    """An MMRazor setting that mmkdflow has no counterpart for."""


def refusal(what: str, nearest: str) -> str:
    """The message of one refused setting."""
    return f'{what} has no mmkdflow counterpart (nearest: {nearest})'


def check_keys(cfg: dict, known: set, what: str) -> None:
    """Refuse the settings of ``cfg`` outside ``known``.

    Raises:
        ConversionError: Naming the settings ``what`` has no place for.
    """
    extra = sorted(set(cfg) - known - {'type'})
    if extra:
        raise ConversionError(refusal(
            f'{what} setting(s) {extra}', f'the settings {sorted(known)}'))


# ----------------------------------------------------------------- losses
def _kl_divergence(cfg: dict, notes: List[str]) -> dict:
    check_keys(cfg, {'tau', 'reduction', 'loss_weight', 'teacher_detach'},
             'KLDivergence')
    if 'teacher_detach' in cfg:
        notes.append('KLDivergence.teacher_detach: the teacher is frozen '
                     'and runs without gradients in mmkdflow')
    return dict(type='KDLoss', temperature=cfg.get('tau', 1.0),
                loss_weight=cfg.get('loss_weight', 1.0),
                reduction=cfg.get('reduction', 'batchmean'))


def _cwd(cfg: dict, notes: List[str]) -> dict:
    check_keys(cfg, {'tau', 'loss_weight'}, 'ChannelWiseDivergence')
    return dict(type='ChannelWiseDivergence', tau=cfg.get('tau', 1.0),
                loss_weight=cfg.get('loss_weight', 1.0))


def _pkd(cfg: dict, notes: List[str]) -> dict:
    check_keys(cfg, {'loss_weight', 'resize_stu'}, 'PKDLoss')
    if not cfg.get('resize_stu', True):
        notes.append('PKDLoss(resize_stu=False) resized the teacher to the '
                     'student; mmkdflow resizes only the student')
    # MMRazor normalises with the unbiased std plus 1e-6
    return dict(type='PKDLoss', loss_weight=cfg.get('loss_weight', 1.0),
                resize_stu=True, unbiased=True, eps=1e-6)


def _dist(cfg: dict, notes: List[str]) -> dict:
    check_keys(cfg, {'inter_loss_weight', 'intra_loss_weight', 'tau',
                   'loss_weight', 'teacher_detach'}, 'DISTLoss')
    return dict(type='DISTLoss', beta=cfg.get('inter_loss_weight', 1.0),
                gamma=cfg.get('intra_loss_weight', 1.0),
                tau=cfg.get('tau', 1.0),
                loss_weight=cfg.get('loss_weight', 1.0))


def _dkd(cfg: dict, notes: List[str]) -> dict:
    check_keys(cfg, {'tau', 'alpha', 'beta', 'reduction', 'loss_weight'},
             'DKDLoss')
    notes.append(
        "DKDLoss: MMRazor passes size_average=False to F.kl_div, so torch "
        "sums over the batch whatever `reduction` says: reduction='sum'")
    return dict(type='DKDLoss', alpha=cfg.get('alpha', 1.0),
                beta=cfg.get('beta', 1.0), temperature=cfg.get('tau', 1.0),
                warmup=0, loss_weight=cfg.get('loss_weight', 1.0),
                reduction='sum')


def _l2(cfg: dict, notes: List[str]) -> dict:
    check_keys(cfg, {'loss_weight', 'normalize', 'mult', 'div_element',
                   'dist'}, 'L2Loss')
    if cfg.get('normalize', True) or not cfg.get('div_element', False) \
            or cfg.get('dist', False):
        raise ConversionError(refusal(
            f'L2Loss(normalize={cfg.get("normalize", True)}, div_element='
            f'{cfg.get("div_element", False)}, dist={cfg.get("dist", False)})'
            f' (sum of squares of L2-normalised features per sample)',
            'MSELoss, the mean squared difference: L2Loss(normalize=False, '
            'div_element=True)'))
    return dict(type='MSELoss', loss_weight=cfg.get('loss_weight', 1.0))


#: MMRazor loss -> a function returning the mmkdflow loss config.
LOSSES: Dict[str, Callable[[dict, List[str]], dict]] = {
    'KLDivergence': _kl_divergence,
    'ChannelWiseDivergence': _cwd,
    'PKDLoss': _pkd,
    'DISTLoss': _dist,
    'DKDLoss': _dkd,
    'L2Loss': _l2,
}
#: MMRazor losses mmkdflow lacks -> the nearest mmkdflow form.
NEAREST_LOSSES = {
    'ABLoss': 'PKDLoss or MSELoss on the same features',
    'ATLoss': 'AttentionMSELoss',
    'AngleWiseRKD': 'DISTLoss (relations between predictions)',
    'DistanceWiseRKD': 'DISTLoss (relations between predictions)',
    'CRDLoss': 'KDLoss on the logits',
    'CrossEntropyLoss': 'KDLoss(temperature=1.0)',
    'KDSoftCELoss': 'KDLoss',
    'WSLD': 'KDLoss',
    'FBKDLoss': 'AttentionMSELoss',
    'FTLoss': 'MSELoss through a ConvAdapter',
    'OFDLoss': 'MSELoss through ConvAdapter(with_bn=True)',
    'MGDLoss': 'a DiffKDConnector (a generative feature connector)',
    'L1Loss': 'MSELoss',
}
ANY_LOSS = ('KDLoss, DKDLoss, DISTLoss, PKDLoss, MSELoss, '
            'ChannelWiseDivergence or AttentionMSELoss')


def map_loss(cfg: dict, notes: List[str]) -> dict:
    """The mmkdflow loss config of an MMRazor ``distill_losses`` entry."""
    name = cfg['type'].split('.')[-1]
    if name not in LOSSES:
        raise ConversionError(refusal(
            f'loss {name}', NEAREST_LOSSES.get(name, ANY_LOSS)))
    return LOSSES[name](dict(cfg), notes)


# ------------------------------------------------------------- connectors
def _norm_kind(norm_cfg: Optional[dict]) -> str:
    """``'none'``, ``'bn'`` (learned, with running statistics) or
    ``'plain'`` (no parameters, no running statistics)."""
    if norm_cfg is None:
        return 'none'
    if norm_cfg.get('type') not in NORM_TYPES:
        return 'other'
    flags = {k: norm_cfg.get(k, True) for k in PLAIN_NORM}
    if flags == PLAIN_NORM:
        return 'plain'
    return 'bn' if all(flags.values()) else 'other'


_CONV_DEFAULTS = dict(kernel_size=1, stride=1, padding=0, dilation=1,
                      groups=1, conv_cfg=None, with_spectral_norm=False,
                      padding_mode='zeros',
                      order=('conv', 'norm', 'act'))
_NEAREST_CONV = ('ConvAdapter (1x1 conv, optional BatchNorm, no '
                 'activation; channel_norm=True standardises both sides)')
#: MMRazor connectors mmkdflow lacks -> the nearest mmkdflow form.
NEAREST_CONNECTORS = {
    'MGDConnector': 'DiffKDConnector (a generative feature connector)',
    'Translator': 'ConvAdapter', 'Paraphraser': 'ConvAdapter',
    'CRDConnector': 'ConvAdapter', 'OFDTeacherConnector': 'ConvAdapter',
    'FBKDStudentConnector': 'ConvAdapter',
    'FBKDTeacherConnector': 'ConvAdapter',
}


def _conv_module(cfg: dict) -> Tuple[dict, str]:
    """``(ConvAdapter config, norm kind)`` of a ConvModuleConnector."""
    check_keys(cfg, set(_CONV_DEFAULTS) | {
        'in_channel', 'out_channel', 'bias', 'norm_cfg', 'act_cfg',
        'inplace', 'init_cfg'}, 'ConvModuleConnector')
    changed = [k for k, default in _CONV_DEFAULTS.items() if k in cfg and (
        tuple(cfg[k]) if isinstance(default, tuple) else cfg[k]) != default]
    act = cfg.get('act_cfg', dict(type='ReLU'))
    kind = _norm_kind(cfg.get('norm_cfg'))
    bias = cfg.get('bias', 'auto')
    bias_fits = bias == 'auto' or bias == (kind == 'none') or \
        kind == 'plain'  # a bias before a standardisation cancels out
    if changed or act is not None or kind == 'other' or not bias_fits:
        raise ConversionError(refusal(
            f'ConvModuleConnector({_settings(cfg)})', _NEAREST_CONV))
    return dict(type='ConvAdapter', in_channels=cfg['in_channel'],
                out_channels=cfg['out_channel'],
                with_bn=kind == 'bn', channel_norm=kind == 'plain'), kind


def _settings(cfg: dict) -> str:
    return ', '.join(f'{k}={v!r}' for k, v in cfg.items() if k != 'type')


def map_connectors(student: Optional[dict], teacher: Optional[dict]
                   ) -> Optional[dict]:
    """The connector of one point from its MMRazor student-side and
    teacher-side connectors (either may be ``None``)."""
    s_type = student and student['type'].split('.')[-1]
    t_type = teacher and teacher['type'].split('.')[-1]
    if student is not None and s_type != 'ConvModuleConnector':
        raise ConversionError(refusal(
            f'connector {s_type}', NEAREST_CONNECTORS.get(
                s_type, _NEAREST_CONV)))
    if teacher is not None and (
            t_type != 'NormConnector' or student is None or
            _norm_kind(teacher.get('norm_cfg')) != 'plain'):
        raise ConversionError(refusal(
            f'teacher-side connector {t_type}({_settings(teacher)})',
            'a student connector: mmkdflow connectors transform the '
            'student; ConvAdapter(channel_norm=True) also standardises '
            'the teacher'))
    if student is None:
        return None
    adapter, kind = _conv_module(student)
    if (kind == 'plain') != (teacher is not None):
        raise ConversionError(refusal(
            f'ConvModuleConnector({_settings(student)}) without the '
            f'matching teacher-side NormConnector'
            if kind == 'plain' else 'this connector pair',
            'ConvAdapter(channel_norm=True): both sides standardised'))
    return adapter


# ---------------------------------------------------------------- hooks
def map_hook(cfg: dict) -> dict:
    """An MMRazor hook's mmkdflow form (other hooks pass unchanged)."""
    name = cfg['type'].split('.')[-1]
    scoped = cfg['type'].startswith('mmrazor.') or cfg.get(
        '_scope_') == 'mmrazor'
    if name == 'StopDistillHook':
        check_keys(cfg, {'stop_epoch', 'priority'}, 'StopDistillHook')
        return dict(type='mmkdflow.StopDistillHook',
                    stop_epoch=cfg['stop_epoch'])
    if scoped or name in ('RazorVisualizationHook', 'DumpSubnetHook',
                          'EstimateResourcesHook'):
        raise ConversionError(refusal(
            f'hook {name}',
            'tools/visualize_features.py (feature heatmaps) or none'))
    return cfg


# ---------------------------------------------------------------- writing
def literal(value, indent: int = 0) -> str:
    """``value`` as config source text (``dict(key=...)`` where the keys
    are names; long strings split into parenthesised pieces)."""
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() and
               not keyword.iskeyword(k) for k in value):
            return 'dict(' + ', '.join(
                f'{k}={literal(v)}' for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{literal(k)}: {literal(v)}'
                               for k, v in value.items()) + '}'
    if isinstance(value, list):
        return '[' + ', '.join(literal(v) for v in value) + ']'
    if isinstance(value, tuple):
        inner = ', '.join(literal(v) for v in value)
        return f'({inner},)' if len(value) == 1 else f'({inner})'
    if isinstance(value, str) and len(value) > 60 and '/' in value:
        return _split_string(value)
    return repr(value)


def _split_string(text: str, width: int = 56) -> str:
    """``('piece/' 'piece/' ...)``: pieces of at most ``width`` characters
    where the text allows, cut after a ``/``."""
    pieces, current = [], ''
    for part in re.findall(r'[^/]*/|[^/]+$', text):
        if current and len(current) + len(part) > width:
            pieces.append(current)
            current = ''
        current += part
    pieces.append(current)
    return '(' + ' '.join(repr(p) for p in pieces) + ')'
