import pytest

from paraspeechclap.train.config import ConfigError, load_config, parse_value


def test_recipes_defaults():
    i = load_config("intrinsic")
    assert i.optim.lr == 1e-5 and i.optim.batch_size == 32 and i.run.seed == 3407 and i.optim.optimizer == "adam"
    assert i.optim.max_steps == 4500 and i.loss.classification and i.sampler.balanced
    assert i.data.train == "ajd12342/paraspeechcaps-intrinsic-train"
    assert i.loss.classification_weight == 1.0 and i.model.max_logit_scale == 100
    assert i.model.freeze == ["text_branch.base.pooler"]
    s = load_config("situational")
    assert s.optim.epochs == 25 and not s.loss.classification and not s.sampler.balanced
    c = load_config("combined")
    assert c.optim.epochs == 5 and c.data.mixing == "interleave" and len(c.data.train) == 2
    assert c.data.stopping_strategy == "all_exhausted" and c.data.probabilities is None
    r = load_config("mini-real", ["model.source=stage1", "data.train=x.jsonl"])  # mini's stage 2 inherits mini
    assert r.model.factory == load_config("mini", ["data.train=x.jsonl"]).model.factory and r.model.init == "pretrained"
    assert not r.loss.order.joint and r.loss.order.orthogonal_to == [["whispered", "normal"]]
    k = load_config("mini-real-keep", ["model.source=stage1", "data.train=x.jsonl"])  # mini-ladders inherits it
    assert k.loss.order.keep == [["normal", "whispered"]] and k.loss.order.keep_weight == 2.0
    assert k.loss.order.orthogonal_to == r.loss.order.orthogonal_to and k.optim.max_steps == r.optim.max_steps == 600
    ld = load_config("mini-ladders", ["model.source=stage1", "data.train=x.jsonl"])  # mini's stage-2 recipe now
    assert ld.loss.order.keep == k.loss.order.keep and ld.optim.max_steps == 1200 and ld.loss.order.shared_crop
    assert ld.loss.classification_weight == 5.0 and ld.run.seed == 1
    assert ld.loss.order.keep_by["pairs"]["male"] == ["male", "female"] and ld.loss.order.margin == 0.1
    assert load_config("mini", ["data.train=x.jsonl"]).model.speech_model == "mel-mini-f0"
    assert load_config("mini", ["data.train=x.jsonl"]).loss.order.data is None  # the order loss is off by default


def test_overrides():
    c = load_config("intrinsic", ["optim.lr=3e-5", "freeze=[text_branch.base]", "batch_size=8",
                                  "data.train=[a.jsonl, b.jsonl]", "data.probabilities=[0.3,0.7]", "grad_clip=1.0",
                                  "precision=bf16", "schedule=cosine", "warmup_steps=10"])
    assert c.optim.lr == 3e-5 and c.model.freeze == ["text_branch.base"] and c.optim.batch_size == 8
    assert c.data.train == ["a.jsonl", "b.jsonl"] and c.data.probabilities == [0.3, 0.7]
    assert c.optim.precision == "bf16" and c.optim.schedule == "cosine"
    assert parse_value("1e-5") == 1e-5 and parse_value("null") is None and parse_value("abc") == "abc"


def test_bad_overrides(tmp_path):
    with pytest.raises(ConfigError, match="did you mean"):
        load_config("intrinsic", ["optim.lrate=1"])
    with pytest.raises(ConfigError, match="ambiguous"):
        load_config("intrinsic", ["every_n_steps=3"])  # checkpoint, logging, validation
    assert load_config("intrinsic", ["split=test"]).data.split == "test"
    with pytest.raises(ConfigError, match="one of"):
        load_config("intrinsic", ["precision=fp8"])
    with pytest.raises(ConfigError, match="epochs or optim.max_steps"):
        load_config("intrinsic", ["max_steps=null"])
    with pytest.raises(ConfigError, match="unknown recipe"):
        load_config("nope")


def test_yaml_recipe_file(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("inherit: situational\noptim:\n  epochs: 2\ndata:\n  train: x.jsonl\n")
    c = load_config(p, ["lr=2e-5"])
    assert c.optim.epochs == 2 and c.run.name == "paraspeechclap_situational" and c.optim.lr == 2e-5
    (tmp_path / "bad.yaml").write_text("optim:\n  nope: 1\n")
    with pytest.raises(ConfigError, match="nope"):
        load_config(tmp_path / "bad.yaml")
