"""Two gloo processes, each with part of the batch, give the gradients of one process over the whole batch."""
import socket

import pytest
import torch
import torch.multiprocessing as mp

import tiny


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
@pytest.mark.parametrize("splits", [[2, 4]])  # unequal shards exercise the padded gather
def test_two_process_gradients_match_single_process(tmp_path, splits):
    mp.spawn(tiny.ddp_worker, args=(2, _free_port(), str(tmp_path), splits), nprocs=2, join=True)
    model = tiny.tiny_model()
    model.eval()
    ref, ref_loss = tiny.grads_of(model, tiny.make_batch(sum(splits)))
    for r in range(2):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=False)
        assert abs(got["loss"] - ref_loss) < 1e-5 * max(1.0, abs(ref_loss))
        g = got["grads"]
        assert set(g) == set(ref), set(g) ^ set(ref)
        for name, ref_g in ref.items():
            err = (g[name] - ref_g).abs().max().item()
            assert err <= 1e-5 * max(1.0, ref_g.abs().max().item()), (name, err)
    # the audio tower really received gradient from both halves (not 1/W of it)
    assert any(k.startswith("audio_branch.") for k in ref)
