"""The ``--cfg-options`` the demo adds to a run: the tuning split, the smoke
run of the tests, and the student's pretrained backbone."""
from typing import List

TUNE_DATA = {
    'mmkdflow.DigitsDetDataset': 'data/digits_det_tune/',
    'mmkdflow.DigitsSegDataset': 'data/digits_seg_tune/',
    'mmkdflow.DigitsClsDataset': 'data/digits_cls_tune/',
}



def load_config(config: str):
    from mmengine.config import Config
    return Config.fromfile(config)


def is_distiller(cfg) -> bool:
    return isinstance(cfg.model, dict) and 'student' in cfg.model


def run_options(cfg, smoke: bool = False, tune: bool = False) -> List[str]:
    """``--cfg-options`` the demo adds to one config's run.

    Args:
        cfg: The run's config.
        smoke: Shrink the run to a few images and one epoch (or 4
            iterations) with one validation pass, logging every iteration.
        tune: Train and validate on the tuning split of the config's
            digits dataset (see ``--tune``) instead of the reported
            train / val split.

    Returns:
        ``key=value`` strings.

    Raises:
        ValueError: ``tune`` for a config whose dataset has no tuning split.
    """
    options = []
    if tune:
        kind = cfg.train_dataloader.dataset.type
        if kind not in TUNE_DATA:
            raise ValueError(f'{cfg.filename}: dataset {kind!r} has no '
                             f'tuning split; --tune needs one of '
                             f'{sorted(TUNE_DATA)}')
        root = TUNE_DATA[kind]
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            options += [f'{loader}.dataset.data_root={root}',
                        f'{loader}.dataset.digits_options.holdout=tune']
        if kind == 'mmkdflow.DigitsDetDataset':
            for name in ('val_evaluator', 'test_evaluator'):
                options.append(f'{name}.ann_file={root}annotations/val.json')
    if smoke:
        by_iter = 'max_iters' in cfg.train_cfg
        options += ['train_dataloader.dataset.indices=16',
                    'val_dataloader.dataset.indices=8',
                    'default_hooks.logger.interval=1']
        for loader in ('train_dataloader', 'val_dataloader'):
            options += [f'{loader}.num_workers=0',
                        f'{loader}.persistent_workers=False']
        if cfg.train_dataloader.dataset.type == 'mmkdflow.DigitsDetDataset':
            # after two steps no box passes 0.05, and mmdet's CocoMetric
            # logs no metric at all for an empty result
            model = 'model.student' if is_distiller(cfg) else 'model'
            options.append(f'{model}.test_cfg.score_thr=0.0')
        if by_iter:
            options += ['train_cfg.max_iters=4', 'train_cfg.val_interval=2',
                        'default_hooks.checkpoint.interval=4']
        else:
            options += ['train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
                        'default_hooks.checkpoint.interval=1']
    return options


def backbone_option(cfg, checkpoint: str) -> str:
    """The ``--cfg-options`` entry that points the student's (or the plain
    model's) backbone ``init_cfg`` at ``checkpoint``.

    Raises:
        ValueError: The config's backbone is not initialised from a
            ``Pretrained`` checkpoint (the demo would silently train it from
            scratch).
    """
    if is_distiller(cfg):
        from mmkdflow.models.utils.model_builder import locate_config
        student = cfg.model.student
        model = load_config(locate_config(student['cfg_path'])).model \
            if 'cfg_path' in student else student
        key = 'model.student.backbone.init_cfg.checkpoint'
    else:
        model, key = cfg.model, 'model.backbone.init_cfg.checkpoint'
    init = (model.get('backbone') or {}).get('init_cfg') or {}
    if init.get('type') != 'Pretrained':
        raise ValueError(
            f'the demo starts every detection / segmentation student from a '
            f'pretrained backbone, but {cfg.filename} has backbone init_cfg '
            f'{init!r}: set init_cfg=dict(type="Pretrained", checkpoint=..., '
            f'prefix="backbone.") in its student config')
    return f'{key}={checkpoint}'
