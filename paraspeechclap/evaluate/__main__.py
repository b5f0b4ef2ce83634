"""``python -m paraspeechclap.evaluate ...`` (same as ``paraspeechclap evaluate ...``)."""
import sys

from .cli import main

sys.exit(main())
