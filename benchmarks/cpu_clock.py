"""`gansmith train ...` whose --minutes count this process's CPU time (user + system, divided by torch's thread
count) instead of wall time, so that runs on a shared machine get the same compute whatever else is running.

    OMP_NUM_THREADS=1 python benchmarks/cpu_clock.py DATA --out RUN --minutes 10 [train options]

With all threads busy, M CPU-minutes are M minutes of wall time on an otherwise idle machine.
"""
import sys
import time
import types

import torch

from gansmith.cli import main
from gansmith.training import loop

if __name__ == "__main__":
    threads = torch.get_num_threads()
    loop.time = types.SimpleNamespace(monotonic=lambda: time.process_time() / threads)
    main(["train", *sys.argv[1:]])
