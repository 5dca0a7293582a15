"""mmkdflow.utils.allocator: glibc malloc stops serving large blocks with
mmap once configured, the switches turn it off, user settings are kept."""
import os
import subprocess
import sys
import textwrap

import pytest

from mmkdflow.utils import allocator

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GLIBC = allocator.mmapped_bytes() is not None


@pytest.fixture
def fresh(monkeypatch):
    """A clean module state and an environment without malloc settings."""
    monkeypatch.setattr(allocator, '_STATE', None)
    for key in allocator.USER_MALLOC_ENV + (allocator.ENV_SWITCH,
                                            'GLIBC_TUNABLES'):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_switches_and_user_settings_skip_the_tuning(fresh):
    state = allocator.configure_allocator(enabled=False)
    assert not state.applied and '--no-allocator-tuning' in state.reason
    for value in ('off', '0', 'False', ' no ', 'default'):
        fresh.setenv(allocator.ENV_SWITCH, value)
        state = allocator.configure_allocator()
        assert not state.applied and allocator.ENV_SWITCH in state.reason
    fresh.delenv(allocator.ENV_SWITCH)
    fresh.setenv('MALLOC_MMAP_MAX_', '65536')
    assert not allocator.configure_allocator().applied
    fresh.delenv('MALLOC_MMAP_MAX_')
    fresh.setenv('GLIBC_TUNABLES', 'glibc.malloc.trim_threshold=0')
    state = allocator.configure_allocator()
    assert not state.applied and 'environment' in state.reason
    assert allocator.allocator_state() is state
    assert not allocator.disabled_by_env({allocator.ENV_SWITCH: 'on'})
    assert allocator.user_tunes_malloc({'MALLOC_TRIM_THRESHOLD_': '1'})


def test_non_glibc_is_a_no_op(fresh):
    fresh.setattr(allocator, '_glibc', lambda: None)
    state = allocator.configure_allocator()
    assert not state.applied and 'nothing to do' in state.reason


def test_cli_switch():
    import argparse
    parser = argparse.ArgumentParser()
    allocator.add_allocator_argument(parser)
    assert parser.parse_args(['--no-allocator-tuning']).no_allocator_tuning
    assert not parser.parse_args([]).no_allocator_tuning


SCRIPT = textwrap.dedent('''
    import json, sys
    from mmkdflow.utils import allocator as a
    big = 64 << 20

    def grows():
        before = a.mmapped_bytes()
        block = bytearray(big)
        after = a.mmapped_bytes()
        del block
        return after - before >= big

    out = dict(default=grows())
    out['skipped'] = a.configure_allocator(enabled=False).applied
    out['skipped_grows'] = grows()
    state = a.configure_allocator()
    out['applied'] = state.applied
    out['settings'] = state.settings
    out['tuned_grows'] = grows()
    out['again'] = a.configure_allocator() is state
    print(json.dumps(out))
''')


def run_script(**env) -> dict:
    import json
    full = {k: v for k, v in os.environ.items()
            if k not in allocator.USER_MALLOC_ENV + (allocator.ENV_SWITCH, )}
    full.update(env, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-c', SCRIPT], env=full,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason='needs glibc >= 2.33 (mallinfo2)')
def test_large_blocks_leave_mmap_once_configured():
    out = run_script()
    assert out['default'] and out['skipped_grows']  # glibc: mmap-ed
    assert out['skipped'] is False
    assert out['applied'] and out['settings'] == {'M_MMAP_MAX': 0,
                                                  'M_TRIM_THRESHOLD': -1}
    assert not out['tuned_grows'] and out['again']
    off = run_script(**{allocator.ENV_SWITCH: 'off'})
    assert not off['applied'] and off['tuned_grows']
