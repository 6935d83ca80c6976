"""The `marketplace` command explains itself: every command and every option has a help text."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from marketplace.cli import build_parser


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
