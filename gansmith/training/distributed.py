"""Data-parallel training on PyTorch's distributed engine (torch.distributed): gloo on CPU, NCCL on CUDA.

    torchrun --nproc_per_node 2 -m gansmith train DATA --out runs/x ...

Design (documented in the README):
- `--batch` is the GLOBAL batch; each of the N ranks takes its 1/N slice of the very same global batch
  (real images and latents), so N ranks train like one process on the whole batch.
- Gradients are averaged across ranks explicitly after each backward, for the network being updated
  only: the G phase never reduces D's (frozen) gradients. We reduce by hand rather than wrap the models
  in DistributedDataParallel because the D phase runs D twice per backward and R1/WGAN-GP need double
  backward, which DDP's reducer does not support (StyleGAN2-ADA does the same).
- Batch norm statistics are per rank (SyncBatchNorm needs CUDA); use `--g-norm pixel` and
  `--d-norm none` for results that do not depend on the number of ranks.
- The step's numbers are averaged across ranks before the policies see them, so the balance policy,
  divergence guard and doctor decide the same on every rank; only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def sync_gradients(self, params) -> None:
        """Average the gradients of `params` across ranks (one flat all-reduce)."""
        if not self.active:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def average(self, t: torch.Tensor) -> torch.Tensor:
        if self.active:
            dist.all_reduce(t)
            t /= self.world
        return t

    def any(self, flag: bool, device) -> bool:
        """True on every rank if `flag` is true on any rank (so all ranks stop at the same step)."""
        if not self.active:
            return flag
        t = torch.tensor([float(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def rank_slice(batch: int, rank: int, world: int) -> slice:
    """This rank's share of a global batch."""
    return slice(rank * batch // world, (rank + 1) * batch // world)


def setup(device_name: str) -> tuple[Dist, str]:
    """Join the process group when started by torchrun; returns the ranks and the device to use."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device_name
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device_name = f"cuda:{local}"
    elif device_name == "auto":
        device_name = "cpu"
    return Dist(rank, dist.get_world_size()), device_name


def shutdown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()
