"""Seeds: the range every command accepts, and lists of seeds as users write them ("0-35,40")."""
from __future__ import annotations

from .errors import UserError

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes 64 bits; every command's --seed is in 0..MAX_SEED


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """"0-3,7" -> [0, 1, 2, 3, 7]: comma-separated seeds and inclusive ranges, in the order given."""
    seeds = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise UserError(f"{option} must be whole numbers or ranges like 0-35, separated by commas, not {text!r}") \
                from None
        if first > last:
            raise UserError(f"{option}: the range {part.strip()!r} runs backwards")
        if first < 0 or last > MAX_SEED:
            raise UserError(f"{option}: seeds are whole numbers from 0 to {MAX_SEED}, not {first if first < 0 else last}")
        seeds.extend(range(first, last + 1))
    return seeds
