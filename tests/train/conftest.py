import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# the tests' model factory (tiny.tiny_model) lives outside paraspeechclap: put it on the import allow-list
# (inherited by the trainer subprocesses the tests start)
os.environ["PARASPEECHCLAP_ALLOW_IMPORTS"] = "tiny"
