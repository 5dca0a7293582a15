"""One image through a config's test pipeline (no annotations needed)."""
import copy
from typing import Dict, Tuple

import numpy as np
from mmengine.config import Config


def _loader_cfg(cfg: Config):
    for name in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(name)
        if loader is not None and loader.get('dataset') is not None:
            return loader
    raise ValueError('the config has no test_dataloader or val_dataloader '
                     'with a dataset; its pipeline prepares the image')


def _pipeline_cfg(dataset_cfg) -> list:
    """The dataset's pipeline (also of a wrapped dataset)."""
    while 'pipeline' not in dataset_cfg and 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    if 'pipeline' not in dataset_cfg:
        raise ValueError('the test dataset config has no pipeline')
    return copy.deepcopy(list(dataset_cfg['pipeline']))


def dataset_image(cfg: Config, index: int = 0) -> str:
    """Path of image ``index`` of the config's test (or val) dataset, which
    is built (and, for the digits demo data, generated) on the way.

    Raises:
        IndexError: If the dataset has fewer images.
    """
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dataset = DATASETS.build(copy.deepcopy(_loader_cfg(cfg).dataset))
    if not 0 <= index < len(dataset):
        raise IndexError(f'the dataset has {len(dataset)} images, got '
                         f'index {index}')
    info = dataset.get_data_info(index)
    return info['img_path']


def prepare_image(cfg: Config, image_path: str) -> Tuple[Dict, np.ndarray]:
    """Run one image file through the config's test pipeline without its
    annotation loading, collated as a batch of one.

    Returns:
        The batch for the model's data preprocessor and the image as an RGB
        ``uint8`` array of its original size.
    """
    import mmcv
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    steps = [t for t in _pipeline_cfg(_loader_cfg(cfg).dataset)
             if 'LoadAnnotations' not in str(t.get('type', ''))]
    pipeline = Compose(steps)
    packed = pipeline(dict(img_path=image_path, img_id=0))
    if packed is None:
        raise ValueError(f'the test pipeline dropped {image_path}')
    image = mmcv.imread(image_path, channel_order='rgb')
    return pseudo_collate([packed]), image
