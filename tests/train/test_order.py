"""The order loss over versions of one recording (paraspeechclap/train/order.py) and its place in training."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny import base_overrides, write_corpus

from paraspeechclap.train import checkpointing as C
from paraspeechclap.train.order import OrderLoss
from paraspeechclap.train.trainer import train

ROWS = [  # two recordings, three versions each; "c" has only versions 100 cents apart
    {"original": "a", "shift_cents": -500}, {"original": "a", "shift_cents": 0}, {"original": "a", "shift_cents": 500},
    {"original": "b", "shift_cents": 400}, {"original": "b", "shift_cents": -400}, {"original": "b", "shift_cents": 0},
    {"original": "c", "shift_cents": 0}, {"original": "c", "shift_cents": 100}, {"shift_cents": 0},
]


class _Items:
    def __getitem__(self, key):
        index, seed = key
        return {"index": index, "seed": seed}


def _rule(**kw):
    args = dict(group_column="original", value_column="shift_cents", classes=["deep", "high-pitched"],
                template="A person is speaking in a {} style.", groups_per_step=2, min_gap=300, weight=1.0, seed=5)
    args.update(kw)
    return OrderLoss(ROWS, _Items(), **args)


def test_groups_and_pairs_follow_the_gap():
    rule = _rule()
    # "c" is closer than min_gap; the row without a group is out
    assert sorted(map(sorted, rule.groups)) == [[0, 1, 2], [3, 4, 5]]
    lo, hi = rule.pairs([0, 1, 2, 3, 4], [0, 0, 0, 1, 1])
    pairs = set(zip(lo.tolist(), hi.tolist()))
    assert pairs == {(0, 1), (0, 2), (1, 2), (4, 3)}  # lower first; never across groups
    assert rule.prompts == ["A person is speaking in a deep style.", "A person is speaking in a high-pitched style."]
    with pytest.raises(ValueError, match="two classes"):
        _rule(classes=["deep"])
    with pytest.raises(ValueError, match="no group"):
        _rule(min_gap=5000)


def test_items_are_drawn_from_seed_step_and_rank():
    rule = _rule(groups_per_step=1)
    first, g1 = rule.items(3)
    again, g2 = rule.items(3)
    assert first == again and g1 == g2 and len(set(g1)) == 1 and len(first) == 3
    draws = {tuple(it["index"] for it in rule.items(step, rank)[0]) for step in range(12) for rank in range(2)}
    assert len(draws) == 2  # both groups get drawn


def test_loss_is_small_in_order_and_its_gradient_puts_pairs_in_order():
    rule = _rule()
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # "deep" along x, "high-pitched" along y
    ordered = torch.tensor([[1.0, 0.1], [0.5, 0.5], [0.1, 1.0]])  # lowest version most "deep"
    scale = torch.tensor(20.0)
    good = rule.loss(ordered, t, scale, [0, 1, 2], [0, 0, 0])
    bad = rule.loss(ordered.flip(0), t, scale, [0, 1, 2], [0, 0, 0])
    assert float(good) < 0.01 < 1.0 < float(bad)
    emb = ordered.flip(0).clone().requires_grad_(True)
    opt = torch.optim.SGD([emb], lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        rule.loss(emb, t, scale, [0, 1, 2], [0, 0, 0]).backward()
        opt.step()
    d = torch.nn.functional.normalize(emb.detach(), dim=-1) @ (t[0] - t[1])
    assert d[0] > d[1] > d[2]
    assert float(rule.loss(emb, t, scale, [0, 1], [0, 1]).detach()) == 0.0  # no pair: zero, still differentiable


def test_shared_crop_gives_a_group_one_seed_and_leaves_independent_draws_as_they_were():
    independent, shared = _rule(groups_per_step=2), _rule(groups_per_step=2, shared_crop=True)
    items, groups = shared.items(4)
    for g in set(groups):
        assert len({it["seed"] for it, h in zip(items, groups) if h == g}) == 1
    assert len({it["seed"] for it in items}) == 2  # each group its own seed
    first, _ = independent.items(4)
    assert len({it["seed"] for it in first}) == len(first)  # one seed per version, as before the option
    assert [it["index"] for it in first] == [it["index"] for it in items]  # the same groups are drawn


def test_margin_keeps_pulling_pairs_that_are_in_order_by_less():
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    close = torch.tensor([[0.55, 0.45], [0.45, 0.55]])  # in order, by a small gap (d: 0.14 vs -0.14 after norm)
    scale = torch.tensor(20.0)
    plain = float(_rule(min_gap=100).loss(close, t, scale, [6, 7], [2, 2]))
    with_margin = float(_rule(min_gap=100, margin=1.0).loss(close, t, scale, [6, 7], [2, 2]))
    assert plain < 0.01 and with_margin > 10.0  # softplus(-20 * 0.28) vs softplus(-20 * (0.28 - 1))


def test_keep_by_holds_each_version_on_its_own_side_of_the_pair():
    rows = [dict(r, gender="male" if r.get("original") == "a" else "female") for r in ROWS]
    rule = OrderLoss(rows, _Items(), group_column="original", value_column="shift_cents",
                     classes=["deep", "high-pitched"], template="{}", groups_per_step=2, min_gap=300, weight=1.0, seed=5,
                     keep_by={"column": "gender", "pairs": {"male": ["male", "female"], "female": ["female", "male"]}})
    assert rule.prompts == ["deep", "high-pitched", "male", "female", "female", "male"]
    t = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [0, -1.0, 0], [0, 1.0, 0]])
    male_side, female_side = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, -1.0, 0.0])
    scale = torch.tensor(20.0)
    # rows 0 and 3: one male version (group a), one female (group b); no order pairs between them
    right = float(rule.loss(torch.stack([male_side, female_side]), t, scale, [0, 3], [0, 1]))
    wrong = float(rule.loss(torch.stack([female_side, male_side]), t, scale, [0, 3], [0, 1]))
    assert right < 1e-6 and wrong > 10.0
    with pytest.raises(ValueError, match="keep_by"):
        _rule(keep_by={"column": "gender"})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), 12, seconds=(0.3, 0.9))


def _versions(root: Path, n_recordings: int = 3) -> Path:
    """Recordings in three pitch versions each (a harmonic tone at 140 Hz x 2^(cents/1200))."""
    import soundfile as sf

    rows, rng = [], np.random.default_rng(1)
    for r in range(n_recordings):
        for cents in (-500, 0, 500):
            f0 = 140 * 2 ** (cents / 1200)
            t = np.arange(12000) / 16000
            wave = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6)) + 0.01 * rng.standard_normal(len(t))
            path = root / "versions" / f"rec{r}_{cents}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave.astype(np.float32), 16000)
            tag = "deep" if cents < 0 else "shrill" if cents > 0 else "calm"
            rows.append({"audio_path": str(path), "original": f"rec{r}", "shift_cents": cents,
                         "text_description": f"A {tag} voice.", "intrinsic_tags": [tag]})
    manifest = root / "versions.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def test_training_with_the_order_loss_logs_it_and_resumes_exactly(tmp_path, corpus):
    versions = _versions(tmp_path)
    common = {"loss.order.data": str(versions), "loss.order.groups_per_step": 2, "loss.order.classes": "[deep,shrill]",
              "data.crop_seconds": 0.5, "checkpoint.every_n_steps": 2, "checkpoint.keep_last": 0,
              "run.deterministic": "true"}
    full = train("intrinsic", base_overrides(tmp_path / "full", corpus, steps=4, batch=4, **common))
    rows = list(csv.DictReader(open(Path(full["run_dir"]) / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["order_loss"]) > 0 for r in rows)  # every step had pairs in order or not
    half = train("intrinsic", base_overrides(tmp_path / "half", corpus, steps=2, batch=4, **common))
    resumed = train("intrinsic", base_overrides(tmp_path / "half", corpus, steps=4, batch=4, **common),
                    resume=half["run_dir"])
    a = torch.load(C.list_checkpoints(Path(full["run_dir"]))[-1] / "model.pth.tar", weights_only=True)
    b = torch.load(C.list_checkpoints(Path(resumed["run_dir"]))[-1] / "model.pth.tar", weights_only=True)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_order_groups_without_their_captions(tmp_path, corpus):
    """``joint=false``: the groups add only audio and the order loss; the contrastive batch stays the main one."""
    versions = _versions(tmp_path, n_recordings=2)
    res = train("intrinsic", base_overrides(tmp_path, corpus, steps=2, batch=4, **{
        "loss.order.data": str(versions), "loss.order.classes": "[deep,shrill]", "loss.order.joint": "false",
        "loss.order.groups_per_step": 1, "data.crop_seconds": 0.5}))
    rows = list(csv.DictReader(open(Path(res["run_dir"]) / "train_log.csv")))
    assert len(rows) == 2 and all(float(r["order_loss"]) > 0 and float(r["contrastive_loss"]) > 0 for r in rows)
    assert res["step"] == 2



def test_orthogonal_to_keeps_the_order_off_other_attributes():
    rule = _rule(orthogonal_to=[["whispered", "normal"]])
    assert rule.prompts[2:] == ["A person is speaking in a whispered style.", "A person is speaking in a normal style."]
    t = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, 0.0], [0.6, 0.0, 1.0],
                                                    [0.0, 0.0, 1.0]]), dim=-1)  # deep, high, whispered, normal
    u = rule.direction(t)
    w = t[2] - t[3]
    assert float((t[0] - t[1]) @ w) > 0.1  # the plain gap leans towards whispered ...
    assert abs(float(u @ w)) < 1e-6 and float(u @ (t[0] - t[1])) > 0  # ... the order's direction does not
    assert torch.equal(_rule().direction(t), t[0] - t[1])
    with pytest.raises(ValueError, match="class pairs"):
        _rule(orthogonal_to=[["whispered"]])


def test_keep_holds_every_version_on_the_first_side_of_a_pair():
    rule = _rule(orthogonal_to=[["whispered", "normal"]], keep=[["normal", "whispered"]])
    assert rule.prompts[4:] == ["A person is speaking in a normal style.", "A person is speaking in a whispered style."]
    t = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.6, 0.8], [0.0, 0.6, 0.8],
                      [0.0, 0.0, 1.0]])  # deep, high, whispered, normal, normal, whispered
    # two versions of one recording already in pitch order (lower is deeper), both nearer "whispered" than "normal"
    speech = torch.tensor([[1.0, -0.2, 0.9], [-1.0, -0.2, 0.9]], requires_grad=True)
    with_keep = rule.loss(speech, t, torch.tensor(10.0), [0, 2], [0, 0])
    without = _rule(orthogonal_to=[["whispered", "normal"]]).loss(speech, t, torch.tensor(10.0), [0, 2], [0, 0])
    assert float(with_keep.detach()) > float(without.detach()) + 0.5  # the keep term counts the two versions on the wrong side
    with_keep.backward()
    gap = torch.tensor([0.0, 0.6, -0.2])  # normal - whispered
    step = speech.detach() - 0.5 * speech.grad
    before = torch.nn.functional.normalize(speech.detach(), dim=-1) @ gap
    after = torch.nn.functional.normalize(step, dim=-1) @ gap
    assert (after > before).all()  # the gradient moves each version towards "normal"
    doubled = _rule(orthogonal_to=[["whispered", "normal"]], keep=[["normal", "whispered"]], keep_weight=2.0)
    keep_part = float(with_keep.detach()) - float(without.detach())
    assert float(doubled.loss(speech, t, torch.tensor(10.0), [0, 2], [0, 0]).detach()) == pytest.approx(
        float(without.detach()) + 2 * keep_part, rel=1e-5)
    with pytest.raises(ValueError, match="keep holds class pairs"):
        _rule(keep=[["normal"]])


def test_several_order_sources_are_concatenated_each_group_once(tmp_path):
    from types import SimpleNamespace

    first = _versions(tmp_path / "one", n_recordings=3)
    second = _versions(tmp_path / "two", n_recordings=2)
    second.write_text(second.read_text().replace('"rec', '"other'))  # distinct recordings
    ocfg = SimpleNamespace(data=f"{first}+{second}", group_column="original", value_column="shift_cents",
                           classes=["deep", "shrill"], groups_per_step=2, min_gap=300, weight=1.0, joint=False,
                           scale=None, orthogonal_to=[], keep=[["calm", "shrill"]], keep_weight=1.0, margin=0.0,
                           shared_crop=False, keep_by=None)
    rule = OrderLoss.from_config(ocfg, audio_root=None, crop_seconds=0.5, random_crop=False, mask_padding=True,
                                 normalize=True, caption_column="text_description", tag_columns=["intrinsic_tags"],
                                 template="A {} voice.", seed=0)
    assert len(rule.groups) == 5 and sorted(map(len, rule.groups)) == [3] * 5  # no group repeated or padded
    assert rule.prompts[-2:] == ["A calm voice.", "A shrill voice."]
