"""ModelSpec: the model options every command, the server, annotate's workers and the RL reward share."""
from __future__ import annotations

import argparse
import pickle

import pytest

from paraspeechclap.modelspec import REPRODUCIBLE, ModelSpec, quiet_loading
from paraspeechclap.precisions import PRECISIONS


def _parse(argv, **defaults):
    parser = argparse.ArgumentParser()
    ModelSpec.add_arguments(parser, **defaults)
    return parser.parse_args(argv)


def test_one_set_of_defaults_on_the_command_line_and_in_python():
    assert ModelSpec.from_args(_parse([])) == ModelSpec()
    assert ModelSpec() == ModelSpec("mini", precision="auto", batch_size=None, device=None)


def test_options_round_trip_into_the_spec():
    args = _parse(["--model", "m.pth.tar", "--revision", "v1", "--precision", "int8", "--device", "cpu",
                   "--batch-size", "4", "--speech-model", "S", "--text-model", "T", "--embedding-dim", "24",
                   "--verbose"])
    assert ModelSpec.from_args(args) == ModelSpec("m.pth.tar", revision="v1", precision="int8", device="cpu",
                                                  batch_size=4, speech_model="S", text_model="T", embedding_dim=24,
                                                  verbose=True)


def test_the_reproducible_override_is_the_only_difference():
    assert ModelSpec.from_args(_parse([], **REPRODUCIBLE)) == ModelSpec(precision="fp32")
    with pytest.raises(TypeError, match="not model options"):
        _parse([], temperature=1.0)


def test_precision_choices_are_the_declared_ones(capsys):
    with pytest.raises(SystemExit):
        _parse(["--precision", "fp16"])
    assert "fp16" in capsys.readouterr().err
    with pytest.raises(ValueError, match="precision must be one of"):
        ModelSpec(precision="fp16")
    with pytest.raises(ValueError, match="batch size"):
        ModelSpec(batch_size=0)
    from paraspeechclap.inference.precision import PRECISIONS as engine
    from paraspeechclap.runtime.backends import PRECISIONS as runtime

    assert engine is PRECISIONS and runtime is PRECISIONS


def test_a_spec_pickles_as_itself():
    spec = ModelSpec("intrinsic", revision="main", precision="bf16")
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_load_is_quiet_unless_verbose(capfd):
    model = ModelSpec("mini", precision="fp32", device="cpu").load()
    err = capfd.readouterr().err
    assert type(model).__name__ == "ParaSpeechCLAP" and model.precision == "fp32"
    assert "Loading weights" not in err and "%|" not in err, err
    ModelSpec("mini", precision="fp32", device="cpu", verbose=True).load()
    assert "Loading weights" in capfd.readouterr().err  # what --verbose shows, and the default hides


def test_quiet_loading_restores_the_libraries_settings():
    from transformers.utils import logging as hf_logging

    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    with quiet_loading():
        assert not hf_logging.is_progress_bar_enabled()
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before


def test_an_exported_folder_refuses_options_that_cannot_apply(tmp_path):
    from paraspeechclap.runtime.manifest import FORMAT, MANIFEST_NAME

    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / MANIFEST_NAME).write_text('{"format": "%s"}' % FORMAT)
    assert ModelSpec(str(folder)).exported and not ModelSpec(str(tmp_path)).exported
    with pytest.raises(ValueError, match="--device cuda cannot apply"):
        ModelSpec(str(folder), device="cuda").load()
    with pytest.raises(ValueError, match="--revision does not apply"):
        ModelSpec(str(folder), revision="v1").load()
