"""Neural style transfer: repaint a photo in the style of one or more paintings (see docs/style.md)."""
from .transfer import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, Settings, Step, transfer

__all__ = ["transfer", "Settings", "Step", "DEFAULT_CONTENT_LAYERS", "DEFAULT_STYLE_LAYERS"]
