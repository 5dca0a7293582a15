"""Config changes of ``tools/test.py``'s options, as mmdet's, mmseg's and
mmpretrain's own ``tools/test.py`` make them: ``--out`` (dump the
predictions) and ``--show-dir`` (draw them)."""
from mmengine.config import Config

#: The task's visualisation hook: ``type -> (switch, where the images go)``;
#: ``None`` as the place means ``visualizer.save_dir`` (mmseg's hook has no
#: directory argument of its own).
VISUALIZATION_HOOKS = {
    'DetVisualizationHook': ('draw', 'test_out_dir'),
    'SegVisualizationHook': ('draw', None),
    'VisualizationHook': ('enable', 'out_dir'),  # mmpretrain
}


def apply_out(cfg: Config, out: str) -> None:
    """``--out FILE.pkl``: add a metric that dumps every prediction to
    ``out`` (mmdet's ``DumpDetResults`` for detection configs, MMEngine's
    ``DumpResults`` otherwise) next to the config's evaluator.

    Raises:
        ValueError: ``out`` is not a ``.pkl`` / ``.pickle`` file.
    """
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must name a .pkl or .pickle file, got '
                         f'{out!r}')
    dump = dict(type='mmdet.DumpDetResults' if cfg.get('default_scope') ==
                'mmdet' else 'mmengine.DumpResults', out_file_path=out)
    evaluator = cfg.test_evaluator
    metrics = list(evaluator) if isinstance(evaluator, (list, tuple)) \
        else [evaluator]
    cfg.test_evaluator = metrics + [dump]


def apply_show_dir(cfg: Config, show_dir: str) -> None:
    """``--show-dir DIR``: turn on the task's visualisation hook and write
    its images to ``DIR`` (relative paths: inside the run's time-stamped
    folder of the work dir, as in mmdet).

    Raises:
        ValueError: The config's ``default_hooks`` has no visualisation
            hook of mmdet, mmseg or mmpretrain.
    """
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    name = str((hook or {}).get('type', '')).split('.')[-1]
    if name not in VISUALIZATION_HOOKS:
        raise ValueError(
            f'--show-dir needs default_hooks.visualization to be one of '
            f'{", ".join(VISUALIZATION_HOOKS)} (the task packages\' '
            f'visualisation hooks), but it is {hook!r}; add e.g. '
            f"default_hooks=dict(visualization=dict(type="
            f"'DetVisualizationHook'))")
    switch, place = VISUALIZATION_HOOKS[name]
    hook[switch] = True
    if place is None:
        cfg.visualizer['save_dir'] = show_dir
    else:
        hook[place] = show_dir
