"""mmkdflow: FM-KT and DiffKD knowledge distillation for OpenMMLab 2.x.

Install into an environment that already has torch and mmcv (the OpenMMLab
way): ``pip install -v -e .``; the dependency ranges come from
``requirements/*.txt``, the version from ``mmkdflow/version.py``.
"""
import os.path as osp
import re
from typing import List

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def parse_requirements(name: str) -> List[str]:
    """The requirement lines of ``requirements/<name>.txt`` (comments and
    blank lines dropped)."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def read_version() -> str:
    """``__version__`` of ``mmkdflow/version.py``, read without importing
    the package (which would need torch)."""
    with open(osp.join(HERE, 'mmkdflow', 'version.py')) as f:
        match = re.search(r"^__version__ = '([^']+)'", f.read(), re.M)
    if match is None:
        raise RuntimeError('mmkdflow/version.py defines no __version__')
    return match.group(1)


def downstream(prefix: str) -> List[str]:
    """The line of ``requirements/mminstall.txt`` for one package."""
    return [r for r in parse_requirements('mminstall') if r.startswith(prefix)]


setup(
    name='mmkdflow',
    version=read_version(),
    description='FM-KT and DiffKD knowledge distillation for OpenMMLab 2.x '
    '(mmdet, mmsegmentation, mmpretrain)',
    long_description=open(osp.join(HERE, 'README.md'),
                          encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    license_files=['LICENSE'],
    python_requires='>=3.9',
    packages=find_packages(include=['mmkdflow', 'mmkdflow.*']),
    install_requires=parse_requirements('runtime'),
    extras_require={
        # mmdet's COCO datasets need pycocotools >= 2.0.8 on numpy 2;
        # mmseg 1.2 imports ftfy and regex without declaring them
        'det': downstream('mmdet') + ['pycocotools>=2.0.8'],
        'seg': downstream('mmsegmentation') + ['ftfy', 'regex'],
        'cls': downstream('mmpretrain'),
        'all': parse_requirements('mminstall'),
        'demo': parse_requirements('demo'),
        'tests': parse_requirements('tests') + parse_requirements('demo') +
        parse_requirements('mminstall'),
    },
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.11',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
