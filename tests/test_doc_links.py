"""Every relative link of the Markdown pages (README.md, docs/, configs/)
points at a file or folder of the repository."""
import glob
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAGES = sorted(
    osp.relpath(p, ROOT) for p in
    [osp.join(ROOT, 'README.md')] +
    glob.glob(osp.join(ROOT, 'docs', '**', '*.md'), recursive=True) +
    glob.glob(osp.join(ROOT, 'configs', '**', '*.md'), recursive=True))
#: ``[text](target)`` and ``![alt](target)``, the target up to a space or ')'
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')


def relative_links(page: str) -> list:
    with open(osp.join(ROOT, page), encoding='utf-8') as f:
        text = f.read()
    text = re.sub(r'```.*?```', '', text, flags=re.S)  # not in code blocks
    return [t for t in LINK.findall(text)
            if not re.match(r'^[a-z][a-z0-9+.-]*:', t) and
            not t.startswith('#')]


def test_pages_are_found():
    assert 'README.md' in PAGES
    assert osp.join('configs', 'fmkt', 'README.md') in PAGES


@pytest.mark.parametrize('page', PAGES)
def test_relative_links_point_at_files(page):
    missing = []
    for target in relative_links(page):
        path = osp.normpath(osp.join(ROOT, osp.dirname(page),
                                     target.split('#')[0]))
        if not osp.exists(path):
            missing.append(target)
    assert not missing, f'{page}: broken links {missing}'
