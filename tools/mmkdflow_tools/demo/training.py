"""Demo training runs: one ``tools/train.py`` subprocess per run, with a
progress line, and the cache that reuses a finished run (backbones,
teacher) while its resolved config, options and dependencies are
unchanged."""
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time
from typing import List, Optional, Sequence

from .options import load_config

#: The repository root (the demo runs the tools of this checkout).
ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def progress_line(line: str) -> Optional[str]:
    for marker in ('Epoch(train)', 'Iter(train)'):
        if marker in line:
            # '[2][ 10/200]': mmengine pads the iteration to a fixed width
            where = ''.join(line.split(marker)[1].split('lr:')[0].split())
            loss = line.split('loss:')[1].split()[0] if 'loss:' in line \
                else '?'
            return f'{marker[:-7].lower()} {where}  loss {loss}'
    return None


#: The training subprocesses running now (:func:`stop_all` ends them).
_LIVE = set()
#: Guards ``_LIVE`` and the terminal (runs side by side print from threads).
_LOCK = threading.Lock()


def say(line: str) -> None:
    """Print one whole line (runs side by side print from several
    threads)."""
    with _LOCK:
        sys.stdout.write(line + '\n')
        sys.stdout.flush()


def stop_all() -> None:
    """Terminate every training subprocess still running (a side-by-side
    run failed: the others would train on for minutes)."""
    with _LOCK:
        procs = list(_LIVE)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()


def train(config: str, work_dir: str, seed: int, label: str, metric: str,
          options: List[str], threads: Optional[int] = None,
          progress: bool = True):
    """One ``tools/train.py`` run (subprocess); returns its RunRecord.

    Args:
        config: The run's config file.
        work_dir: Its work directory.
        seed: ``randomness.seed``.
        label: The name in the printed lines.
        metric: The validation metric the record reads.
        options: Extra ``--cfg-options``.
        threads: Intra-op threads of the run (``OMP_NUM_THREADS`` /
            ``MKL_NUM_THREADS``); None keeps torch's default (one per core).
        progress: Rewrite one progress line while it trains (off when runs
            share the terminal side by side: then only the start and the
            result are printed).

    Raises:
        RuntimeError: mmkdflow is not installed from a source checkout
            (the demo runs that checkout's ``tools/train.py``).
    """
    from mmkdflow_tools.reporting import metric_scale, read_run
    tool = osp.join(ROOT, 'tools', 'train.py')
    if not osp.isfile(tool):
        raise RuntimeError(
            f'the demo runs the tools of a source checkout, but {tool} does '
            f'not exist: install mmkdflow with "pip install -e ." from the '
            f'repository (make demo does)')
    cmd = [sys.executable, tool, config,
           '--work-dir', work_dir, '--cfg-options', f'randomness.seed={seed}',
           *options]
    start = time.time()
    say(f'  [{label}] training (log: {work_dir})')
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    with _LOCK:
        _LIVE.add(proc)
    tail = []
    try:
        for line in proc.stdout:
            tail = (tail + [line])[-40:]
            where = progress_line(line) if progress else None
            if where:
                print(f'\r  [{label}] {where}  {time.time() - start:.0f}s   ',
                      end='', flush=True)
        proc.wait()
    finally:
        with _LOCK:
            _LIVE.discard(proc)
    if proc.returncode != 0:
        say(f'--- last lines of {label}:\n' + ''.join(tail).rstrip())
        raise SystemExit(f'{label} failed (exit {proc.returncode}); full '
                         f'log under {work_dir}')
    record = read_run(work_dir, metric)
    done = (f'  [{label}] done in {time.time() - start:.0f}s: {metric} '
            f'{record.final:.4f} in the log'
            + (f' ({record.value:.1f} %)' if metric_scale(metric) != 1
               else ''))
    say('\r' + done + ' ' * 30 if progress else done)
    return record



def fingerprint(config: str, options: Sequence[str] = (),
                depends: Sequence[str] = ()) -> str:
    """Hash of a run's resolved config, its extra options and the
    fingerprints it depends on (e.g. the teacher on its backbone): a cached
    run is reused only while this is unchanged."""
    text = load_config(config).pretty_text
    digest = hashlib.sha256(text.encode())
    for item in (*options, '|', *depends):
        digest.update(b'\0' + str(item).encode())
    return digest.hexdigest()[:16]


STAMP = 'mmkdflow_demo_cache.json'


def cached_run(config: str, work_dir: str, label: str, metric: str,
               options: Sequence[str] = (), depends: Sequence[str] = (),
               retrain: bool = False, threads: Optional[int] = None,
               seed: int = 0) -> dict:
    """Train ``config`` into ``work_dir`` unless a run with the same
    fingerprint finished there (its stamp file and checkpoint exist).
    ``threads`` and ``seed`` are :func:`train`'s, and part of the
    fingerprint (the thread count changes the float results too).

    Returns:
        The stamp: ``fingerprint``, ``checkpoint`` (the last one),
        ``work_dir``.
    """
    stamp_path = osp.join(work_dir, STAMP)
    key = fingerprint(config, options,
                      [*depends, f'threads={threads}', f'seed={seed}'])
    stamp = {}
    if osp.isfile(stamp_path):
        with open(stamp_path) as f:
            stamp = json.load(f)
    if (not retrain and stamp.get('fingerprint') == key
            and osp.isfile(stamp.get('checkpoint', ''))):
        print(f'{label}: reusing {stamp["checkpoint"]}')
        return stamp
    if stamp:
        print(f'{label}: config changed (or --retrain-teacher): retraining')
    else:
        print(f'{label}: training (first run only; cached afterwards)')
    if osp.isfile(stamp_path):
        os.remove(stamp_path)
    train(config, work_dir, seed, label, metric, list(options), threads)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    stamp = dict(fingerprint=key, checkpoint=checkpoint, work_dir=work_dir)
    with open(stamp_path, 'w') as f:
        json.dump(stamp, f, indent=1)
    return stamp


def extract_backbone(stamp: dict, out: str) -> str:
    """Write the ``backbone.*`` weights of a pretraining checkpoint to
    ``out`` (what ``init_cfg=dict(type='Pretrained', prefix='backbone.')``
    reads), unless ``out`` already holds those of this fingerprint."""
    import torch
    meta_path = out + '.json'
    if osp.isfile(out) and osp.isfile(meta_path):
        with open(meta_path) as f:
            if json.load(f).get('fingerprint') == stamp['fingerprint']:
                return out
    from mmkdflow.engine.checkpoint import load_checkpoint_file
    ckpt = load_checkpoint_file(stamp['checkpoint'], 'backbone checkpoint')
    state = {k: v for k, v in ckpt['state_dict'].items()
             if k.startswith('backbone.')}
    if not state:
        raise RuntimeError(f'{stamp["checkpoint"]} holds no backbone.* '
                           f'weights: is it an ImageClassifier checkpoint?')
    os.makedirs(osp.dirname(out), exist_ok=True)
    torch.save(dict(state_dict=state), out + '.tmp')
    os.replace(out + '.tmp', out)
    with open(meta_path, 'w') as f:
        json.dump(dict(fingerprint=stamp['fingerprint'],
                       source=stamp['checkpoint']), f, indent=1)
    return out
