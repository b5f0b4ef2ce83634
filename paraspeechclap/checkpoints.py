"""Moved to :mod:`paraspeechclap.loading` (and :mod:`paraspeechclap.hub`); this name stays until model.py switches."""
from .loading import *  # noqa: F401,F403
