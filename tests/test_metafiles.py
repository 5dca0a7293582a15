"""The model index (``model-index.yml`` and each method folder's
``metafile.yml``, OpenMMLab's format read by ``mim`` and model-index tools):
every config listed exactly once, every listed file present, every paper
number equal to the one in that folder's README table."""
import glob
import os.path as osp
import re

import pytest
import yaml
from test_config_names import ALIASES

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
METRICS = {'Object Detection': 'box AP', 'Semantic Segmentation': 'mIoU',
           'Image Classification': 'Top 1 Accuracy'}


def load(path: str) -> dict:
    with open(osp.join(ROOT, path)) as f:
        return yaml.safe_load(f)


def metafiles() -> list:
    return load('model-index.yml')['Import']


def all_models() -> list:
    return [m for path in metafiles() for m in load(path)['Models']]


def readme_rows(folder: str) -> dict:
    """``config file name -> table cells`` of a method folder's README."""
    rows = {}
    with open(osp.join(ROOT, 'configs', folder, 'README.md')) as f:
        for line in f:
            match = re.search(r'\[[^\]]+\]\(([^)]+\.py)\)', line)
            if line.startswith('| ') and match:
                cells = [c.strip() for c in line.strip().strip('|')
                         .split('|')]
                if match.group(1) in rows:
                    raise ValueError(f'{match.group(1)} in two README rows')
                rows[match.group(1)] = cells
    return rows


def test_every_config_is_listed_exactly_once():
    shipped = sorted(
        osp.relpath(p, ROOT) for p in glob.glob(
            osp.join(ROOT, 'configs', '*', '*.py'))
        if '_base_' not in p and
        osp.relpath(p, osp.join(ROOT, 'configs')) not in ALIASES)
    listed = [m['Config'] for m in all_models()]
    assert sorted(listed) == shipped
    names = [m['Name'] for m in all_models()]
    assert len(set(names)) == len(names)


def test_listed_files_exist_and_collections_are_complete():
    for path in metafiles():
        meta = load(path)
        collections = {c['Name']: c for c in meta['Collections']}
        for collection in collections.values():
            assert osp.isfile(osp.join(ROOT, collection['README']))
            if 'Paper' in collection:
                assert collection['Paper']['URL'].startswith(
                    'https://arxiv.org/abs/')
                assert collection['Paper']['Title']
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            assert osp.isfile(osp.join(ROOT, model['Config'])), model
            assert model['Name'] == osp.basename(model['Config'])[:-3]
            for result in model.get('Results', []):
                assert list(result['Metrics']) == [METRICS[result['Task']]]


@pytest.mark.parametrize('folder', ['diffkd', 'fmkt'])
def test_metafile_numbers_equal_the_readme(folder):
    rows = readme_rows(folder)
    models = load(f'configs/{folder}/metafile.yml')['Models']
    assert sorted(osp.basename(m['Config']) for m in models) == sorted(rows)
    for model in models:
        teacher, student, paper = rows[osp.basename(model['Config'])][:3]
        meta = model['Metadata']
        task = meta.get('Task') or model['Results'][0]['Task']
        metric = METRICS[task]
        if folder == 'diffkd':
            # "T / S / DiffKD[, variant] (Table N)"
            found = re.match(r'([\d.]+) / ([\d.]+) / ([\d.]+)[^(]*'
                             r'\((Table \d+)\)', paper)
            assert found, paper
            t_value, s_value, value, table = found.groups()
            assert meta[f'Teacher {metric} (paper)'] == float(t_value)
            assert meta[f'Student {metric} (paper)'] == float(s_value)
            assert meta['Paper table'] == table
            assert model['Results'][0]['Metrics'][metric] == float(value)
        else:
            # no FM-KT paper number in the README: none in the metafile
            assert ('Results' in model) == bool(paper), model['Name']
            if paper:
                assert model['Results'][0]['Metrics'][metric] == \
                    float(paper)
        assert (meta['Teacher'], meta['Student']) == (teacher, student)
