"""Surviving mutants of `gibbous/core` that no test can kill, with the reason.

`python -m bench.mutation` marks a survivor listed here as equivalent in its report (and
leaves it out of the "without equivalents" score). A mutant is equivalent when the changed
program behaves the same for every input the code can receive; the reason says why. The
names are mutmut's (module, function, number) and change when the function does: a listed
name that no longer survives, or now names another change, must be re-checked.
"""

from __future__ import annotations

EQUIVALENT: dict[str, str] = {}
