"""What this machine offers: memory, the compute device, and whether bf16 pays on it."""
from __future__ import annotations

import os
import re
import warnings

import torch

from .errors import UserError


def total_memory() -> int | None:
    """Physical RAM in bytes, or None where the OS does not say (no sysconf, e.g. Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def available_memory() -> int | None:
    """RAM that can be allocated now without swapping (Linux MemAvailable), else the physical RAM."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return total_memory()


DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?")


def check_device_name(name: str) -> None:
    if not DEVICE_NAME.fullmatch(name):
        raise UserError(f"--device must be auto, cpu, cuda[:N] or mps, not {name!r}")


def resolve_device(name: str) -> torch.device:
    """auto: CUDA, else Apple's MPS, else the CPU; a named device must exist."""
    check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    if name == "mps" and not mps_available():
        raise UserError("--device mps: Apple's MPS is not available on this machine")
    return torch.device(name)


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def amp_by_default(device: torch.device) -> bool:
    """bf16 unless asked otherwise only where it was measured to pay: CPUs with AVX512-BF16 (docs/defaults.md).
    GPUs are unmeasured here, so they compute in float32 unless asked."""
    return device.type == "cpu" and cpu_has_bf16()


def amp_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for --amp: bf16 where the hardware computes in it natively, else None (float32)."""
    if not amp:
        return None
    if (device.type == "cuda" and torch.cuda.is_bf16_supported()) or amp_by_default(device):
        return torch.bfloat16
    warnings.warn(f"--amp has no effect on this {device.type}: it needs native bf16 (a CUDA GPU that supports it, "
                  "or a CPU with AVX512-BF16); training in float32")
    return None


def cpu_has_bf16() -> bool:
    # torch's own check (private, stable in the pinned torch); get_cpu_capability() says only "AVX512"
    return torch.cpu._is_avx512_bf16_supported()
