"""The rule table: one small, documented unit per EQ code.

Every text a user reads about a rule lives beside the check that finds it, one module per family of
rules; ``equiv-lint --list-rules``, ``--explain EQ001`` and ``docs/rules/EQ0xx.md`` are all produced
from :data:`RULES`, and the engine runs each rule's ``check`` over a :class:`ModelGraph`.

To add a rule: write its ``check`` and :class:`Rule` in the module of its family (or a new one),
then list it in :data:`RULES` below.
"""

from __future__ import annotations

from typing import Iterable

from pytest_equivariance.lint.rules.downsampling import EQ001, EQ002, EQ003
from pytest_equivariance.lint.rules.padding import EQ010, EQ011
from pytest_equivariance.lint.rules.position import EQ008, EQ009
from pytest_equivariance.lint.rules.resampling import EQ004, EQ005, EQ007
from pytest_equivariance.lint.rules.rule import Check, Hit, Rule
from pytest_equivariance.lint.rules.space_to_depth import EQ006

__all__ = ["RULES", "Check", "Hit", "Rule", "matching_codes"]

#: The rule table, ordered by code.
RULES: dict[str, Rule] = {
    rule.code: rule for rule in (EQ001, EQ002, EQ003, EQ004, EQ005, EQ006, EQ007, EQ008, EQ009, EQ010, EQ011)
}


def matching_codes(pattern: str, codes: Iterable[str] = RULES) -> list[str]:
    """Return the codes that ``pattern`` names: a code, a prefix (``"EQ00"``), or ``"ALL"``.

    Case and surrounding blanks are ignored; an empty pattern names nothing. ``codes`` defaults to
    the rule table's.
    """
    pattern = pattern.strip().upper()
    if not pattern:
        return []
    return list(codes) if pattern == "ALL" else [code for code in codes if code.startswith(pattern)]
