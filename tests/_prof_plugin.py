import time, pytest, sys
import e2e_utils
from mmengine.runner import Runner
def wrap(name, f):
    def g(*a, **k):
        t = time.time(); r = f(*a, **k); print(f'\n{name}: {time.time()-t:.1f}s', file=sys.__stderr__, flush=True); return r
    return g
e2e_utils.run_tool = wrap('run_tool', e2e_utils.run_tool)
e2e_utils.run_without_mmkdflow = wrap('subproc', e2e_utils.run_without_mmkdflow)
Runner.train = wrap('train', Runner.train)
Runner.from_cfg = classmethod(wrap('from_cfg', Runner.from_cfg.__func__))
