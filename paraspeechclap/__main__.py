"""``python -m paraspeechclap`` (also ``torchrun -m paraspeechclap train ...``)."""
from .cli import main

raise SystemExit(main())
