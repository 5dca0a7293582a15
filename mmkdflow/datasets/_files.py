"""Deterministic files and the cached, atomic build of a dataset root.

Every builder writes everything into a staging folder inside ``root``, moves
the finished folders into place and writes the marker file
``root/.mmkdflow_digits.json`` LAST; a later call with identical parameters
finds the marker and returns at once, any other call removes the builder's
own folders and rebuilds.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, Dict, Optional

import numpy as np

#: Bump when the generated files change for identical parameters; a marker
#: with another version is stale and triggers a rebuild.
FORMAT_VERSION = 1
#: Name of the marker file written last into every dataset root.
MARKER_NAME = '.mmkdflow_digits.json'


def save_png(array: np.ndarray, path: str) -> None:
    """Write a uint8 array (H, W) or (H, W, 3) as PNG (deterministic bytes)."""
    from PIL import Image
    mode = 'L' if array.ndim == 2 else 'RGB'
    Image.fromarray(np.ascontiguousarray(array), mode=mode).save(
        path, format='PNG', compress_level=6)


def dump_json(obj, path: str) -> None:
    """Write JSON with a fixed layout, so equal content means equal bytes."""
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, sort_keys=True, separators=(',', ':'))
        f.write('\n')


def read_marker(root: str) -> Optional[dict]:
    """The marker of a built dataset root, or None when missing/unreadable."""
    try:
        with open(osp.join(root, MARKER_NAME), encoding='utf-8') as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _normalise(params: dict) -> dict:
    """Parameters as they read back from JSON (tuples become lists)."""
    return json.loads(json.dumps(params, sort_keys=True))


#: Top-level files/folders of ``root`` that each builder writes (and removes
#: again when the folder is stale).
BUILDER_ENTRIES = {
    'digits_det': ('train', 'val', 'annotations'),
    'digits_seg': ('img_dir', 'ann_dir'),
    'digits_cls': ('train', 'val'),
}


def _remove(path: str) -> None:
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path)
    elif osp.lexists(path):
        os.remove(path)


def cached_build(root, builder: str, params: dict,
                 write: Callable[[str], Dict[str, int]]) -> str:
    """Build a dataset into ``root`` unless an identical build is there.

    ``write`` fills a staging folder with exactly the entries
    ``BUILDER_ENTRIES[builder]`` and returns the sizes recorded in the marker.
    If ``root/.mmkdflow_digits.json`` names the same builder, format version
    and parameters, nothing is touched. Otherwise the stale marker and the
    entries of this builder (and of the builder the stale marker names) are
    removed, the staged entries are moved in and the marker is written last.
    Other files in ``root`` are left alone.
    """
    root = os.fspath(root)
    params = _normalise(params)
    marker = read_marker(root)
    if (marker is not None and marker.get('builder') == builder
            and marker.get('format_version') == FORMAT_VERSION
            and marker.get('params') == params):
        return root
    entries = BUILDER_ENTRIES[builder]
    stale = set(entries)
    if marker is not None:
        stale |= set(BUILDER_ENTRIES.get(marker.get('builder'), ()))
    os.makedirs(root, exist_ok=True)
    stage = tempfile.mkdtemp(prefix='.mmkdflow_build_', dir=root)
    try:
        sizes = write(stage)
        _remove(osp.join(root, MARKER_NAME))
        for name in sorted(stale):
            _remove(osp.join(root, name))
        for name in entries:
            os.replace(osp.join(stage, name), osp.join(root, name))
        tmp_marker = osp.join(stage, MARKER_NAME)
        dump_json(
            dict(builder=builder, format_version=FORMAT_VERSION,
                 params=params, sizes=sizes), tmp_marker)
        os.replace(tmp_marker, osp.join(root, MARKER_NAME))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return root
