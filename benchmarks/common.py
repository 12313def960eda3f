"""What every benchmark result names: the machine it was measured on."""
import os
import platform

import torch


def machine() -> str:
    """CPU model and vector instruction set (AVX2 or AVX512 sets the FLOP/s ceiling), cores, threads, versions."""
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    return (f"{model} ({torch.backends.cpu.get_cpu_capability()}), {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}, "
            f"{platform.platform()}")
