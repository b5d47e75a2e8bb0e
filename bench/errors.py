"""The one exception type the CLI turns into a one-line message and a non-zero exit.

Every error a user can cause (an unknown name, a bad option, a missing or corrupt file, a
non-finite loss) is raised as a :class:`BenchError` whose message names the problem *and* the fix.
"""

from __future__ import annotations


class BenchError(Exception):
    """A user-facing error: ``str(err)`` is a single line naming the problem and the fix."""

    exit_code = 2


class NonFiniteLossError(BenchError):
    """The training loss became NaN or Inf at a given step."""

    exit_code = 3
