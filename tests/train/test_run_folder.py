"""Run folders: the command that resumes a run."""
from types import SimpleNamespace

from paraspeechclap.train.run_folder import resume_command

ALONE = SimpleNamespace(is_main=True, distributed=False, rank=0, world_size=1)


def test_resume_command():
    assert resume_command("runs/my run", ALONE) == "paraspeechclap train --resume 'runs/my run'"
    two = SimpleNamespace(distributed=True, world_size=4)
    assert resume_command("runs/x", two) == "torchrun --nproc_per_node=4 -m paraspeechclap train --resume runs/x"
