"""Loading the user's images: `load_images(spec) -> ImageData` (the data contract in docs/contracts.md).

Modules: `specs` resolves a DATA spec into files or an array, `decode` decodes one file safely and
resizes, `arrays` reads .npz/IDX, `load` puts it together, `cache` holds the decoded copies of data sets
too large for memory (they stream from there).
"""
from .decode import MAX_PIXELS, open_image
from .imagedata import ImageData
from .load import SUPPORTED_RES, DataWarning, check_image_options, load_images

__all__ = ["ImageData", "MAX_PIXELS", "SUPPORTED_RES", "DataWarning", "check_image_options", "load_images",
           "open_image"]
