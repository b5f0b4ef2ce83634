"""Training: recipes as config files, the loop, checkpoints with exact resume, torchrun support."""

from .config import load_config  # noqa: F401
