"""gansmith: train GANs on your own images, repaint photos with neural style transfer, measure honestly."""

__version__ = "0.1.0"
