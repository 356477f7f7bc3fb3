"""Run a service module under cProfile counting CPU time, not wall time.

    python -m bench.profiled OUT.prof MODULE [ARGS...]

`python -m cProfile` counts wall time: on a busy machine a socket write to
Redis that wakes the server and loses the core shows as the write's own
time. The process's CPU clock shows where this process spends its CPU. The
profile is written when the module returns (aiohttp's run_app returns on
SIGTERM), read with `pstats`.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
