"""Neural style transfer: repaint a photo in the style of one or more paintings (see docs/style.md)."""
from .batch import flicker, transfer_folder
from .transfer import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, Settings, Step, Stylizer, transfer

__all__ = ["transfer", "transfer_folder", "flicker", "Settings", "Step", "Stylizer",
           "DEFAULT_CONTENT_LAYERS", "DEFAULT_STYLE_LAYERS"]
