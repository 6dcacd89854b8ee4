"""CLI subcommand groups belong to their parser (a flaky 'conflicting subparser' bug)."""

from __future__ import annotations

import gc

import pytest

import node.cli._main as cli


def test_many_parsers_in_one_process_each_get_their_own_groups() -> None:
    """Parsers built and dropped in a loop (as tests do) never share a group."""
    for _ in range(200):
        parser = cli.build_parser()
        args = parser.parse_args(["schemes", "list"])
        assert args.schemes_command == "list"
        del parser
        gc.collect()


def test_main_twice_in_one_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schemes", "list"]) == 0
    assert cli.main(["schemes", "list"]) == 0
    assert "heihe" in capsys.readouterr().out
