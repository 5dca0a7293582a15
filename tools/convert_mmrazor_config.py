"""Convert an MMRazor 1.x knowledge-distillation config to mmkdflow.

    python tools/convert_mmrazor_config.py MMRAZOR_CONFIG OUT.py
        [--teacher-ckpt PATH_OR_URL]

Reads a ``SingleTeacherDistill`` / ``FpnTeacherDistill`` config with a
``ConfigurableDistiller`` and writes an mmkdflow config: the recorders and
``loss_forward_mappings`` become ``distill_points`` (one per MMRazor loss),
the losses and connectors their mmkdflow forms (``tools/mmrazor_mapping.py``
holds the tables), ``StopDistillHook`` and the teacher checkpoint carry
over. What has no counterpart is refused, naming it and the nearest
mmkdflow form; what is mapped with a change is noted in the written file.
``--teacher-ckpt`` sets ``model.teacher_ckpt``; no other setting is added.

MMRazor is not imported (``tools/mmrazor_reading.py`` reads its files).
The written config inherits the same package bases plus
``mmkdflow::_base_/default_runtime_distill.py``, and sets only the
runner's keys whose values the MMRazor files change.
"""
import argparse
import os.path as osp
import re
import sys
import textwrap
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config

from mmkdflow.models.utils.model_builder import locate_config

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import mmrazor_mapping as mapping  # noqa: E402
from mmrazor_mapping import ConversionError, refusal  # noqa: E402
from mmrazor_reading import (read_bases, read_mmrazor_config,  # noqa: E402
                             rename)

#: Top-level keys MMEngine's Runner reads; other top-level names of a
#: config are helpers already substituted where they are used.
RUNNER_KEYS = (
    'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'val_evaluator', 'test_evaluator',
    'optim_wrapper', 'param_scheduler', 'auto_scale_lr', 'default_hooks',
    'data_preprocessor', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'load_from', 'resume', 'randomness', 'default_scope',
    'launcher', 'find_unused_parameters', 'model_wrapper_cfg')
RUNTIME = 'mmkdflow::_base_/default_runtime_distill.py'


# ------------------------------------------------------------------ model
def _recorded(arg: dict, recorders: dict, role: str, where: str
              ) -> Tuple[str, object]:
    """``(module path, index)`` of one loss argument."""
    name = arg.get('recorder')
    if name not in recorders:
        raise ConversionError(f'{where}: no {role} recorder {name!r}')
    recorder = recorders[name]
    kind = recorder['type'].split('.')[-1]
    if kind != 'ModuleOutputs':
        raise ConversionError(refusal(
            f'{where}: {role} recorder {name!r} of type {kind} '
            f"(source {recorder.get('source')!r})", mapping.NEAREST_RECORDER))
    record, data = arg.get('record_idx', 0), arg.get('data_idx')
    if record and data is not None:
        raise ConversionError(refusal(
            f'{where}: record_idx={record} with data_idx={data}',
            'index: it picks one call of a module called several times, '
            'or one entry of a tuple output'))
    return recorder['source'], data if not record else record


def map_point(name: str, loss: dict, args: dict, distiller: dict,
              notes: List[str]) -> dict:
    """The distill point of one MMRazor loss and its forward mapping."""
    where = f'loss {name!r}'
    errors: List[str] = []
    point = dict(loss=_attempt(errors, mapping.map_loss, loss, notes))
    student = [a for a in args.values() if a.get('from_student')]
    teacher = [a for a in args.values() if not a.get('from_student')]
    labels = args.get(mapping.LABEL_ARG)
    if labels is not None and point['loss'] is not None and \
            point['loss']['type'] == 'DKDLoss':
        student = [a for a in student if a is not labels]
        notes.append(f'{where}: {mapping.LABEL_ARG} come from the batch')
    recorded = [
        _attempt(errors, _recorded, arg, distiller.get(f'{role}_recorders',
                                                       {}), role, where)
        for role, side in (('student', student), ('teacher', teacher))
        for arg in side]
    if len(student) != 1 or len(teacher) != 1:
        errors.append(refusal(f'{where} with arguments {sorted(args)}',
                              'one student and one teacher tensor per '
                              'distill point'))
    connectors = distiller.get('connectors', {})
    point['connector'] = _attempt(errors, mapping.map_connectors, *(
        connectors.get(side[0].get('connector')) if side else None
        for side in (student, teacher)))
    if errors:
        raise ConversionError('\n'.join(errors))
    (s_path, s_index), (t_path, t_index) = recorded
    point.update(student=s_path, teacher=t_path)
    if s_index == t_index:
        point.update(index=s_index)
    else:
        point.update(student_index=s_index, teacher_index=t_index)
    order = ('student', 'teacher', 'index', 'student_index',
             'teacher_index', 'connector', 'loss')
    return {k: point[k] for k in order if point.get(k) is not None}


def _checks(algo: dict, notes: List[str]) -> None:
    refused = [
        (algo.get('teacher_trainable', False), 'teacher_trainable=True',
         'a frozen teacher (always in eval(), no gradients)'),
        (not algo.get('teacher_norm_eval', True), 'teacher_norm_eval=False',
         'the teacher in eval() at all times'),
        (not algo.get('student_trainable', True), 'student_trainable=False',
         'a trained student')]
    for bad, what, nearest in refused:
        if bad:
            raise ConversionError(refusal(what, nearest))
    if 'teacher_module_inplace' in algo:
        notes.append('teacher_module_inplace: mmkdflow records the teacher '
                     'with hooks, nothing to set')


def _model_part(cfg: dict, role: str, bases: Config, packages: List[str]
                ) -> dict:
    """``student`` / ``teacher`` of the Distiller."""
    cfg = {k: v for k, v in cfg.items() if k != 'pretrained'}
    text = repr(cfg)
    if 'mmrazor' in text or 'Distilled' in text:
        raise ConversionError(refusal(
            f'{role} model with MMRazor modules ({cfg.get("type")})',
            'a model of mmdet, mmseg or mmpretrain'))
    if 'cfg_path' in cfg:
        return dict(cfg, cfg_path=rename(cfg['cfg_path']))
    if bases.get('model') == cfg and len(packages) == 1:
        return dict(cfg_path=packages[0])
    return cfg


def _data_preprocessor(algo: dict, student: dict, notes: List[str]) -> None:
    """MMRazor's algorithm-level preprocessor must equal the student's."""
    mine = algo.get('data_preprocessor')
    if mine is None:
        return
    if 'cfg_path' in student:
        file = Config.fromfile(locate_config(student['cfg_path']))
        theirs = file.model.get('data_preprocessor') or file.get(
            'data_preprocessor') or {}
    else:
        theirs = student.get('data_preprocessor') or {}
    norm = ('mean', 'std')
    rgb = [d.get('bgr_to_rgb', d.get('to_rgb', False))
           for d in (mine, theirs)]
    if any(list(mine.get(k, ())) != list(theirs.get(k, ())) for k in norm) \
            or rgb[0] != rgb[1]:
        raise ConversionError(refusal(
            f'model.data_preprocessor {dict(mine)} that differs from the '
            f"student's {dict(theirs)}",
            "the student's own data preprocessor (set it in student=)"))
    notes.append("model.data_preprocessor: the student's own (the same "
                 'mean, std and channel order) serves the student and the '
                 'teacher')


def _attempt(errors: List[str], step, *args):
    """``step(*args)``, or ``None`` with its refusal added to ``errors``."""
    try:
        return step(*args)
    except ConversionError as err:
        errors.extend(e for e in str(err).splitlines() if e not in errors)


def _teacher_ckpt(algo: dict, given: Optional[str]) -> str:
    if not (given or algo.get('teacher_ckpt')):
        raise ConversionError(refusal(
            'a teacher without teacher_ckpt (MMRazor keeps a random or '
            'config-initialised teacher)', 'teacher_ckpt, e.g. '
            '--teacher-ckpt; mmkdflow refuses a random teacher'))
    return given or algo['teacher_ckpt']


def _algorithm(algo: dict, notes: List[str]) -> None:
    kind = algo.get('type', '').split('.')[-1]
    if 'init_cfg' in algo:
        raise ConversionError(refusal(
            f'{kind}.init_cfg {dict(algo["init_cfg"])} (weights of a whole '
            f'MMRazor algorithm)', "load_from with an mmkdflow distiller's "
            "checkpoint, or the student's own init_cfg"))
    mapping.check_keys(algo, mapping.ALGORITHM_KEYS, kind)
    _checks(algo, notes)


def map_model(algo: dict, bases: Config, packages: List[str],
              notes: List[str], errors: List[str],
              teacher_ckpt: Optional[str] = None) -> Optional[dict]:
    """The mmkdflow Distiller config of an MMRazor algorithm config, or
    ``None`` with the refusals added to ``errors``."""
    kind = algo.get('type', '').split('.')[-1]
    distiller = algo.get('distiller', {})
    d_kind = distiller.get('type', '').split('.')[-1]
    if kind not in mapping.ALGORITHMS:
        errors.append(refusal(f'algorithm {kind}', 'Distiller, the '
                              'frozen-teacher distillation of '
                              'SingleTeacherDistill'))
        return None
    if d_kind != 'ConfigurableDistiller':
        errors.append(refusal(f'distiller {d_kind}',
                              'distill_points (ConfigurableDistiller)'))
        return None
    _attempt(errors, mapping.check_keys, distiller, mapping.DISTILLER_KEYS,
             d_kind)
    _attempt(errors, _algorithm, algo, notes)
    model = dict(_scope_='mmkdflow', type='Distiller')
    if bases.get('model') is not None:
        model['_delete_'] = True
    model['student'] = _attempt(errors, _model_part, algo['architecture'],
                                'student', bases, packages)
    model['teacher'] = _attempt(errors, _model_part, algo['teacher'],
                                'teacher', bases, packages)
    model['teacher_ckpt'] = _attempt(errors, _teacher_ckpt, algo,
                                     teacher_ckpt)
    if mapping.ALGORITHMS[kind] is not None:
        model['teacher_forward'] = mapping.ALGORITHMS[kind]
    if not algo.get('calculate_student_loss', True):
        model['student_loss_weight'] = 0.0
    if model['student'] is not None:
        _attempt(errors, _data_preprocessor, algo, model['student'], notes)
    mappings = distiller.get('loss_forward_mappings', {})
    points = {}
    for name, loss in distiller.get('distill_losses', {}).items():
        if name not in mappings:
            errors.append(f'loss {name!r} has no loss_forward_mappings '
                          f'entry (nearest: a distill point per loss)')
            continue
        point_name = re.sub(r'^loss_', '', name).replace('.', '_')
        points[point_name] = _attempt(errors, map_point, name, loss,
                                      mappings[name], distiller, notes)
    used = {arg.get('connector') for args in mappings.values()
            for arg in args.values()}
    unused = sorted(set(distiller.get('connectors', {})) - used)
    if unused:
        notes.append(f'connectors {unused}: no loss uses them')
    model['distill_points'] = points
    return model


# ---------------------------------------------------------------- runner
def runner_keys(cfg: Config, bases: Config, notes: List[str]
                ) -> Tuple[Dict[str, object], List[dict]]:
    """The runner's keys the MMRazor files change, and the custom hooks."""
    keys = {}
    for key in RUNNER_KEYS:
        value = cfg.get(key)
        if value is None or value == bases.get(key):
            continue
        value = _unscoped(value.to_dict() if hasattr(value, 'to_dict')
                          else value, bases.get('default_scope'))
        if key in ('val_cfg', 'test_cfg') and 'SingleTeacherDistillValLoop' \
                in str(value.get('type')):
            notes.append(f"{key}: SingleTeacherDistillValLoop -> the "
                         f"package's loop; TeacherReferenceHook logs the "
                         f"teacher's metrics once")
            continue
        if key == 'default_hooks':
            value = {k: mapping.map_hook(dict(v)) if isinstance(v, dict)
                     and 'type' in v else v for k, v in value.items()}
        if 'mmrazor' in repr(value):
            raise ConversionError(refusal(f'{key} with MMRazor modules',
                                          f"the package's own {key}"))
        base = bases.get(key)
        if isinstance(value, dict) and isinstance(base, dict) and \
                set(base) - set(value) - {'_scope_'}:
            value = dict(_delete_=True, **value)
        keys[key] = value
    hooks = [mapping.map_hook(dict(h)) for h in cfg.get('custom_hooks', [])
             if h not in bases.get('custom_hooks', [])]
    if any('SingleTeacherDistillValLoop' in str(cfg.get(k, {}).get('type'))
           for k in ('val_cfg', 'test_cfg')):
        hooks.append(dict(type='mmkdflow.TeacherReferenceHook'))
    return keys, hooks


def _unscoped(value, scope: Optional[str]):
    """``value`` without the ``_scope_`` entries MMEngine adds to the
    dicts of a package's config (the default scope's)."""
    if isinstance(value, dict):
        return {k: _unscoped(v, scope) for k, v in value.items()
                if not (k == '_scope_' and v == scope)}
    if isinstance(value, (list, tuple)):
        return type(value)(_unscoped(v, scope) for v in value)
    return value


def convert(path: str, teacher_ckpt: Optional[str] = None) -> str:
    """The text of the mmkdflow config of the MMRazor config ``path``.

    Raises:
        ConversionError: Naming each setting without an mmkdflow form,
            one per line.
    """
    cfg, packages = read_mmrazor_config(path)
    if cfg.get('model') is None:
        raise ConversionError(refusal(
            f'{osp.basename(path)} (no model: not an algorithm config)',
            'an MMRazor config whose model is SingleTeacherDistill'))
    bases = read_bases(packages)
    notes, errors = [], []
    model = map_model(cfg.model.to_dict(), bases, packages, notes, errors,
                      teacher_ckpt)
    if bases.get('custom_hooks'):
        errors.append(refusal(
            f'custom_hooks of the package bases {packages} (MMEngine '
            f'refuses a key that two bases set)', f'a config beside '
            f'{RUNTIME} whose bases set no custom_hooks'))
    keys, hooks = _attempt(errors, runner_keys, cfg, bases, notes) or ({},
                                                                     [])
    if errors:
        raise ConversionError('\n'.join(errors))
    lines = ['# Converted by tools/convert_mmrazor_config.py from the '
             'MMRazor config', f'# {osp.basename(path)}.']
    for note in dict.fromkeys(notes):
        lines += textwrap.wrap(note, 77, initial_indent='# - ',
                               subsequent_indent='#   ')
    lines.append(f'_base_ = {mapping.literal(packages + [RUNTIME])}')
    lines.append(f'model = {mapping.literal(model)}')
    lines += [f'{k} = {mapping.literal(v)}' for k, v in keys.items()]
    lines.append('custom_hooks = [*_base_.safe_training_hooks' + ''.join(
        f', {mapping.literal(h)}' for h in hooks) + ']')
    lines.append("custom_imports = dict(imports=['mmkdflow'], "
                 'allow_failed_imports=False)')
    return _format('\n'.join(lines) + '\n')


def _format(text: str) -> str:
    """OpenMMLab's config layout (yapf, 79 columns), when yapf is there."""
    try:
        from yapf.yapflib.yapf_api import FormatCode
    except ImportError:
        return text
    style = dict(based_on_style='pep8', column_limit=79,
                 split_before_expression_after_opening_paren=True,
                 allow_split_before_dict_value=False)
    return FormatCode(text, style_config=style)[0]


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert an MMRazor 1.x KD config to mmkdflow')
    parser.add_argument('config', help='the MMRazor config')
    parser.add_argument('out', help='the mmkdflow config to write (.py)')
    parser.add_argument('--teacher-ckpt',
                        help='sets model.teacher_ckpt (path or URL)')
    return parser.parse_args()


def main():
    args = parse_args()
    import mmkdflow  # noqa: F401  (mmkdflow:: bases resolve)
    try:
        text = convert(args.config, args.teacher_ckpt)
    except ConversionError as err:
        raise SystemExit(f'{args.config}: not converted:\n{err}')
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(text)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
