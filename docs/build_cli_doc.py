"""Write docs/cli.md from the ``--help`` text of every ``cijobs`` command.

Run ``make docs`` after changing a command; ``tests/test_docs.py`` fails while the committed
file differs from what this script writes.
"""

from __future__ import annotations

from pathlib import Path

import click

from cijobs_analytics.cli import cli

OUT = Path(__file__).resolve().parent / "cli.md"

INTRO = """\
# Command-line reference

`cijobs` (also `python -m cijobs_analytics`). Generated from `--help` by
`docs/build_cli_doc.py`; do not edit by hand.

Credentials come from the environment, never from a flag: `TENCENTCLOUD_SECRET_ID`,
`TENCENTCLOUD_SECRET_KEY` and, for temporary keys, `TENCENTCLOUD_SESSION_TOKEN`.

Exit codes: `0` success, `1` failure (the service, the network, the dataset, a held lock),
`2` usage error (a bad option value, missing credentials).
"""


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    # The command's own context settings (help option names, width) as the real CLI uses them.
    settings = {**command.context_settings, "terminal_width": 100}
    return click.Context(command, info_name=name, parent=parent, **settings)


def _help(command: click.Command, name: str, parent: click.Context | None) -> str:
    with _context(command, name, parent) as ctx:
        return command.get_help(ctx)


def render() -> str:
    """The text of docs/cli.md."""
    parts = [INTRO, "## cijobs\n", "```text\n" + _help(cli, "cijobs", None) + "\n```\n"]
    root = _context(cli, "cijobs", None)
    assert isinstance(cli, click.Group)
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        assert command is not None
        parts.append(f"## cijobs {name}\n")
        parts.append("```text\n" + _help(command, name, root) + "\n```\n")
    return "\n".join(parts)


def main() -> None:
    OUT.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
