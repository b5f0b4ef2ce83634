"""The service's options are declared once (ServeConfig): the CLI's flags and defaults and the limits table of
docs/serve.md are read from it."""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from paraspeechclap.serve import cli
from paraspeechclap.serve.config import ServeConfig, limits_table, options

DOC = Path(__file__).resolve().parents[2] / "docs" / "serve.md"


def test_every_option_is_in_the_docs_limits_table():
    text = DOC.read_text(encoding="utf-8")
    assert limits_table() in text, "docs/serve.md's limits table differs from ServeConfig: paste limits_table()"
    for option in fields(ServeConfig):
        assert f"(`{option.name}`)" in text


def test_the_cli_takes_every_option_with_the_config_defaults():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    flags = {a for action in parser._actions for a in action.option_strings}
    assert {o.metadata["flag"] for o in options()} <= flags
    assert cli.config_from_args(parser.parse_args([])) == ServeConfig()
    changed = cli.config_from_args(parser.parse_args(["--max-upload-mb", "2", "--allowed-hosts", "a.example, b",
                                                      "--max-request-cost", "10", "--header-timeout", "3"]))
    assert changed.max_upload_bytes == 2 * 2**20 and changed.allowed_hosts == ("a.example", "b")
    assert changed.max_request_cost == 10 and changed.header_timeout == 3
    assert "a.example" in cli.config_from_args(parser.parse_args(["--host", "a.example"])).allowed_hosts
