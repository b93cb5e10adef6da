"""Helpers shared by the tests (pytest puts tests/ on sys.path: `from cli_helpers import run_main`)."""

from __future__ import annotations

import contextlib
import io

from planet.cli import main


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """`planet ARGV` in this process; returns (exit code, stdout, stderr); argparse's SystemExit becomes the code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()
