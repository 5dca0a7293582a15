"""One log line for every change ``tools/train.py`` / ``tools/test.py``
make to a config, so a run's log says what was trained, and a user of a
plain MMEngine ``Runner`` can put the same lines into the config (docs:
"Running without mmkdflow's tools")."""
from mmengine.logging import print_log


def log_change(setting: str, old, new, why: str) -> None:
    """Log ``mmkdflow tools: <setting>: <old> -> <new> (<why>)``."""
    print_log(f'mmkdflow tools: {setting}: {old!r} -> {new!r} ({why})',
              'current')


def log_addition(setting: str, item, why: str) -> None:
    """Log ``mmkdflow tools: <setting> += [<item>] (<why>)``."""
    print_log(f'mmkdflow tools: {setting} += [{item!r}] ({why})', 'current')
