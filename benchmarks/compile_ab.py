"""torch.compile of G and D against eager mode, on the bare training step of benchmarks/throughput.py.

    python benchmarks/compile_ab.py [--res 28] [--channels 1] [--batch 16] [--mode default] [--repeats 60]

Builds the same step twice (same model, precision and layout as the trainer's default), compiles G and D of one,
and times the two interleaved in one process (median of --repeats), so the shared CPU's drift hits both alike.
Compile time is reported apart and not counted in the step time.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import BareStep, _timed  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--res", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--mode", default="default", help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    p.add_argument("--repeats", type=int, default=60)
    args = p.parse_args()
    eager, compiled = BareStep(args.res, args.channels, args.batch), BareStep(args.res, args.channels, args.batch)
    start = time.perf_counter()
    mode = None if args.mode == "default" else args.mode
    compiled.G, compiled.D = torch.compile(compiled.G, mode=mode), torch.compile(compiled.D, mode=mode)
    for _ in range(3):
        compiled()
    print(f"compile and 3 warm-up steps: {time.perf_counter() - start:.1f} s")
    for _ in range(3):
        eager()
    times = np.array([(_timed(eager), _timed(compiled)) for _ in range(args.repeats)])
    e, c = np.median(times, axis=0)
    print(f"{args.res} px, batch {args.batch}, mode {args.mode}: eager {e * 1e3:.2f} ms, compiled {c * 1e3:.2f} ms "
          f"per step (compiled / eager {c / e:.2f})")


if __name__ == "__main__":
    main()
