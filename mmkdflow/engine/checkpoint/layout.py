"""The on-disk layouts of mmkdflow's checkpoints, owned in one place.

A **distiller checkpoint** is MMEngine's (``meta``, ``state_dict``,
``optimizer``, ``message_hub`` ...) with the distiller's weights under
:data:`STUDENT_PREFIX` (``student.``), ``teacher.`` and
:data:`CONNECTOR_PREFIX` (``connectors.<point>.``), plus the entries the
hooks add. A frozen teacher loaded from ``teacher_ckpt`` is left out: its
``teacher.`` entries are replaced by ``teacher_identity.sha256`` and
``teacher_identity.ckpt``, checked on loading
(:mod:`mmkdflow.engine.checkpoint.teacher_identity`). The hooks add:

* :data:`CONNECTOR_EMA_KEY`: the connectors' EMA
  (:class:`~mmkdflow.engine.hooks.ConnectorEMAHook`), MMEngine's
  ``ExponentialMovingAverage.state_dict()`` of a ``ModuleDict`` of the
  averaged points (``module.<point>.<param>`` and ``steps``);
* :data:`RANDOM_STATES_KEY`: the generators' states
  (:class:`~mmkdflow.engine.checkpoint.ResumeStateHook`).

A **student checkpoint** (:func:`student_checkpoint`) is what the
downstream package writes for the student alone: ``state_dict`` without
the ``student.`` prefix and a plain-type ``meta``. A **deploy checkpoint**
(:func:`deploy_checkpoint`, plain FM-KT) keeps the distiller's prefixes for
the student and the inference-time connectors, with the EMA weights in
place of the live ones when the checkpoint holds them.

The writers (the hooks, ``tools/export_student.py``) and the readers (the
hooks on resume and ``load_from``, the exporter) import the keys and the
functions from here, so a layout changes in one module.
"""
import copy
from typing import Dict, Iterable, List, Mapping

from torch import Tensor

#: Prefix of the student's weights in the distiller's ``state_dict``.
STUDENT_PREFIX = 'student.'
#: Prefix of the connectors' weights (``connectors.<point>.<param>``).
CONNECTOR_PREFIX = 'connectors.'
#: Checkpoint entry holding the averaged connectors' state.
CONNECTOR_EMA_KEY = 'connector_ema_state_dict'
#: Prefix of the averaged weights inside :data:`CONNECTOR_EMA_KEY`
#: (MMEngine's ``ExponentialMovingAverage`` keeps its model as ``module``).
EMA_MODULE_PREFIX = 'module.'
#: Checkpoint entry holding the random generators' states.
RANDOM_STATES_KEY = 'random_states'
#: ``meta`` entries a student or deploy checkpoint keeps.
EXPORTED_META = ('dataset_meta', 'epoch', 'iter', 'seed')


def state_dict_of(checkpoint: Mapping) -> Mapping:
    """The weights of a checkpoint (``state_dict``, or the dict itself
    when it is a bare state dict).

    Returns:
        Mapping: The weights.
    """
    return checkpoint.get('state_dict', checkpoint)


def export_meta(checkpoint: Mapping) -> Dict:
    """The plain-type ``meta`` of an exported checkpoint: the entries of
    :data:`EXPORTED_META` the checkpoint has, and ``exported_from``.

    Returns:
        dict: The ``meta`` of the export.
    """
    meta = checkpoint.get('meta', {}) or {}
    out = {k: copy.deepcopy(meta[k]) for k in EXPORTED_META if k in meta}
    out['exported_from'] = 'mmkdflow distiller'
    return out


def _student_weights(state: Mapping) -> Dict[str, Tensor]:
    student = {k: v for k, v in state.items()
               if k.startswith(STUDENT_PREFIX)}
    if not student:
        raise ValueError(
            'the checkpoint has no `student.*` weights; is it a checkpoint '
            'of an mmkdflow distiller?')
    return student


def student_checkpoint(checkpoint: Mapping) -> Dict:
    """The student alone, as the downstream package writes it.

    Keeps the ``student.`` weights (prefix removed) and the plain-type
    ``meta`` (dataset classes, epoch, iteration), so ``init_detector`` /
    ``init_model`` / ``get_model`` load it with safe loading and without
    mmkdflow.

    Returns:
        dict: The student's checkpoint.

    Raises:
        ValueError: If the checkpoint holds no student weights.
    """
    student = _student_weights(state_dict_of(checkpoint))
    return {'meta': export_meta(checkpoint),
            'state_dict': {k[len(STUDENT_PREFIX):]: v
                           for k, v in student.items()}}


def connector_prefix(point: str) -> str:
    """The ``state_dict`` prefix of the connector of ``point``.

    Returns:
        str: The prefix, ``connectors.<point>.``.
    """
    return f'{CONNECTOR_PREFIX}{point}.'


def pack_connector_ema(ema_state: Mapping) -> Dict:
    """The :data:`CONNECTOR_EMA_KEY` entry for an EMA model's
    ``state_dict()``: tensors detached and on the CPU.

    Returns:
        dict: The entry.
    """
    return {k: v.detach().cpu() if isinstance(v, Tensor) else v
            for k, v in ema_state.items()}


def ema_connector_state(checkpoint: Mapping) -> Dict[str, Tensor]:
    """The averaged connector weights of a checkpoint, keyed like the
    distiller's own state dict (``connectors.<point>.<param>``); empty when
    the checkpoint was written without the connector EMA.

    Returns:
        dict[str, Tensor]: The averaged connector weights.
    """
    state = checkpoint.get(CONNECTOR_EMA_KEY) or {}
    return {CONNECTOR_PREFIX + k[len(EMA_MODULE_PREFIX):]: v
            for k, v in state.items() if k.startswith(EMA_MODULE_PREFIX)}


def connector_weights(checkpoint: Mapping,
                      points: Iterable[str]) -> Dict[str, Tensor]:
    """The live weights of the connectors of ``points``, keyed like the
    averaged model's own state dict (``<point>.<param>``), to start an
    average from a checkpoint written without one.

    Returns:
        dict[str, Tensor]: The live connector weights.
    """
    points = set(points)
    return {k[len(CONNECTOR_PREFIX):]: v
            for k, v in state_dict_of(checkpoint).items()
            if k.startswith(CONNECTOR_PREFIX) and
            k[len(CONNECTOR_PREFIX):].split('.')[0] in points}


def deploy_checkpoint(checkpoint: Mapping, points: List[str]) -> Dict:
    """Weights of the deployable model of a plain FM-KT distiller:
    ``student.*`` plus the connectors of ``points`` (their EMA weights when
    the checkpoint holds them). ``meta['connector_ema']`` names the points
    exported with EMA weights.

    Returns:
        dict: The deployable checkpoint.

    Raises:
        ValueError: If the checkpoint lacks the student or a connector.
    """
    state = state_dict_of(checkpoint)
    out = _student_weights(state)
    ema = ema_connector_state(checkpoint)
    averaged = []
    for name in points:
        prefix = connector_prefix(name)
        weights = {k: v for k, v in state.items() if k.startswith(prefix)}
        if not weights:
            raise ValueError(
                f'the checkpoint has no weights of the connector of point '
                f'{name!r} ({prefix}*); was it written with this config?')
        from_ema = {k: v for k, v in ema.items() if k.startswith(prefix)}
        if from_ema:
            averaged.append(name)
        weights.update(from_ema)
        out.update(weights)
    meta = export_meta(checkpoint)
    meta['connector_ema'] = averaged
    return {'meta': meta, 'state_dict': out}
