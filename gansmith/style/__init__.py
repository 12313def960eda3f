"""Neural style transfer: repaint a photo in the style of one or more paintings (see docs/style.md).

The names below are imported when first used (PEP 562), so that reading `Settings` does not load PyTorch."""
import importlib

_HOMES = {"transfer": "stylize", "Step": "stylize", "Stylizer": "stylize", "transfer_folder": "batch",
          "flicker": "batch", "Settings": "settings", "DEFAULT_CONTENT_LAYERS": "settings",
          "DEFAULT_STYLE_LAYERS": "settings"}

__all__ = list(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value
