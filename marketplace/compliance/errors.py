"""Why a rulebook cannot be used: every command that builds one stops on these (marketplace/cli.py), which it can
catch without importing the rule contract and the snapshots."""


class RuleLoadError(Exception):
    """A rule's entry point cannot be loaded, or does not give a rule."""


class RulebookError(Exception):
    """The rulebook cannot be built; the service must not start with it."""
