"""What every benchmark result names: the machine it was measured on."""
import os
import platform
import resource

import torch


def machine() -> str:
    """CPU model and vector instruction set (AVX2 or AVX512 sets the FLOP/s ceiling), cores, threads, versions."""
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    return (f"{model} ({torch.backends.cpu.get_cpu_capability()}), {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}, "
            f"{platform.platform()}")


EMOJI_ZIP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "twemoji-64.zip")
HELD_OUT = 10


def emoji_split(folder) -> tuple[str, str]:
    """The emoji set without HELD_OUT evenly spaced emoji (a zip to train on) and those emoji (a folder of PNGs
    no model saw: the projection benchmark's targets). Made once in `folder`; the same split every time."""
    import zipfile
    from pathlib import Path
    folder = Path(folder)
    train, held_out = folder / "twemoji-64-train.zip", folder / "twemoji-64-held-out"
    if train.exists() and held_out.is_dir():
        return str(train), str(held_out)
    folder.mkdir(parents=True, exist_ok=True)
    held_out.mkdir(exist_ok=True)
    with zipfile.ZipFile(EMOJI_ZIP) as source:
        names = sorted(n for n in source.namelist() if n.endswith(".png"))
        chosen = set(names[::len(names) // HELD_OUT][:HELD_OUT])
        partial = train.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w") as out:
            for name in names:
                if name in chosen:
                    (held_out / Path(name).name).write_bytes(source.read(name))
                else:
                    out.writestr(name, source.read(name))
        partial.replace(train)
    return str(train), str(held_out)


def call_in_child(module: str, function: str, *args):
    """`module.function(*args)` (a benchmarks/ module; JSON-able arguments and result) in a fresh Python process:
    for measurements that a process keeps, such as its peak RSS."""
    import json
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys, json; sys.path.insert(0, {here!r}); import {module} as m; "
            f"print('RESULT', json.dumps(m.{function}(*{list(args)!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.split("RESULT", 1)[1])


def rss_mb() -> float:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
