"""Sprint Desktop: one-step SANA-Sprint image generation on your own PC."""

__version__ = "0.1.0"
