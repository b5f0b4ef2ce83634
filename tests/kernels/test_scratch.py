"""kernels/scratch.py: scratch slots grow and are reused per thread, the weights cache rebuilds on a new key, and
inference tensors have no version."""
from __future__ import annotations

import threading

import torch

from paraspeechclap.kernels import scratch as S


def test_a_scratch_slot_grows_is_reused_and_is_per_thread():
    S.release_scratch()
    small = S.scratch("test", (4, 8), torch.float32, torch.device("cpu"))
    again = S.scratch("test", (2, 8), torch.float32, "cpu")
    assert again.data_ptr() == small.data_ptr() and S.scratch_bytes("test") == 4 * 8 * 4
    larger = S.scratch("test", (16, 8), torch.float32, "cpu")
    assert larger.shape == (16, 8) and S.scratch_bytes("test") == 16 * 8 * 4
    other = S.scratch("test", (2, 8), torch.bfloat16, "cpu")  # another dtype: a new tensor
    assert other.dtype == torch.bfloat16 and S.scratch_bytes("test") == 2 * 8 * 2
    seen = []
    thread = threading.Thread(target=lambda: seen.append(S.scratch_bytes("test")))
    thread.start()
    thread.join()
    assert seen == [0]
    S.release_scratch_slots("test")
    assert S.scratch_bytes("test") == 0


def test_the_weights_cache_rebuilds_when_the_key_changes_and_follows_in_place_changes():
    class Owner:
        pass

    owner, builds = Owner(), []
    weight = torch.ones(3)
    build = lambda: builds.append(1) or weight.sum().item()  # noqa: E731
    assert S.cached(owner, "_value", S.weights_key(weight), build) == 3.0
    assert S.cached(owner, "_value", S.weights_key(weight), build) == 3.0 and len(builds) == 1
    weight.mul_(2.0)  # in place: the version moves, the value is rebuilt
    assert S.cached(owner, "_value", S.weights_key(weight), build) == 6.0 and len(builds) == 2


def test_inference_tensors_have_no_version():
    with torch.inference_mode():
        made = torch.ones(2)
    assert S.tensor_version(made) is None and S.tensor_version(torch.ones(2)) == 0
