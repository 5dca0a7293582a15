"""mmkdflow: FM-KT and DiffKD knowledge distillation for OpenMMLab 2.x.

Install into an environment that already has torch and mmcv (the OpenMMLab
way): ``pip install -v -e .``; the dependency ranges come from
``requirements/*.txt``, the version from ``mmkdflow/version.py``.
"""
import os
import os.path as osp
import re
import shutil
from typing import List

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
# what OpenMMLab's tools (MMEngine's ``mmkdflow::`` configs, mim) read from
# an installed package's ``.mim`` folder
MIM_FILES = ('configs', 'tools', 'model-index.yml')


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


class BuildPyWithMim(build_py):
    """``build_py`` that also copies configs/, tools/ and model-index.yml
    into ``mmkdflow/.mim`` of a wheel, as mmdet and MMRazor ship them. An
    editable install needs no copy: the source tree's ``mmkdflow/.mim``
    holds links to the same three."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        mim = osp.join(self.build_lib, 'mmkdflow', '.mim')
        shutil.rmtree(mim, ignore_errors=True)
        os.makedirs(mim)
        ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
        for name in MIM_FILES:
            src, dst = osp.join(HERE, name), osp.join(mim, name)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=ignore)
            else:
                shutil.copyfile(src, dst)


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
    cmdclass={'build_py': BuildPyWithMim},
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
