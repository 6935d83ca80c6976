"""The `marketplace` command explains itself: every command and every option has a help text."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from marketplace.cli import build_parser, main


def parsers(
    parser: argparse.ArgumentParser, name: str = "marketplace"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                yield from parsers(child, f"{name} {child_name}")


def test_every_command_and_option_has_help() -> None:
    missing = []
    for name, parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{name} {choice.dest}" for choice in action._choices_actions if not choice.help]
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    assert len(list(parsers(build_parser()))) >= 15


# Commands whose output is JSON whatever the options (reports a script reads), and those that print nothing a
# script would read (they serve, migrate, write files, or greet a person); every other command takes --json.
ALWAYS_JSON = {
    "audit sequence",
    "audit verify",
    "ledger check",
    "rules evaluate",
    "rules impact",
    "rules snapshot",
    "settle",
}
NOTHING_TO_READ = {"serve", "worker", "db upgrade", "db downgrade", "demo", "messages update"}


def test_every_command_a_script_reads_can_answer_json() -> None:
    leaves = {
        name.removeprefix("marketplace "): parser
        for name, parser in parsers(build_parser())
        if not any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)
    }
    without = [
        name
        for name, parser in leaves.items()
        if name not in ALWAYS_JSON | NOTHING_TO_READ
        and not any("--json" in action.option_strings for action in parser._actions)
    ]
    assert without == []
    assert set(leaves) >= ALWAYS_JSON | NOTHING_TO_READ


def test_admin_create_answers_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("STORAGE_DIR", str(tmp_path))
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["admin", "create", "--email", "Ops@Example.com", "--password", "a long password", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert (created["email"], created["name"]) == ("ops@example.com", "Administrator")
    assert uuid.UUID(created["id"])


def test_billing_and_the_books_answer_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("STORAGE_DIR", str(tmp_path))
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["billing", "statements", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["billing", "collect", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"paid": 0, "failed": 0, "waiting": 0, "suspended_licences": 0}
    assert main(["billing", "renew"]) == 0
    assert capsys.readouterr().out.split() == [
        "renewed=0",
        "failed=0",
        "waiting=0",
        "suspended_licences=0",
        "expired_licences=0",
    ]
    assert main(["ledger", "check"]) == 0
    books = json.loads(capsys.readouterr().out)
    assert (books["ok"], books["escrow_checked"], books["usage_checked"]) == (True, True, True)
    with pytest.raises(SystemExit) as refused:
        main(["billing", "statements", "--licence", "not-an-id"])
    assert refused.value.code == 2
    assert "not an id" in capsys.readouterr().err
