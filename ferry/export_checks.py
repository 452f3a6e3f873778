"""Checks of an export's file shape and name that need no catalog: date formats, file names, bounds.

They run with every other parameter check (:mod:`ferry.params`), before a run
is created, so a pattern that would write garbage, a name a destination cannot
hold, or a number Prefect cannot list is refused with exit 2 and no run.
"""

from __future__ import annotations

import re
import string

from ferry.errors import Problem

MOMENT_FORMATS = ("iso", "L", "LL", "LLL")
FILENAME_PLACEHOLDERS = ("date", "resource", "workspace", "run_id", "format")

#: The largest integer every reader of a run's parameters keeps exact: Prefect stores them as JSON,
#: and a larger ``limit`` once stored made every run listing that included it answer HTTP 500.
MAX_INTEGER = 2**53 - 1

#: strftime directives Arrow's ``strftime`` (the transform stage) writes as a date or time part.
#: ``%n`` and ``%t`` are left out: they put a line break or a tab into every date cell.
STRFTIME_DIRECTIVES = frozenset("aAbBcCdDeFgGhHIjmMpRrSTuUVwWxXyYzZ")
#: ``%E`` and ``%O`` modifiers (alternative representations) and the directives they apply to.
STRFTIME_MODIFIED = {"E": frozenset("cCxXyYz"), "O": frozenset("deHImMSuUVwWyz")}

#: C0 controls, DEL and C1 controls: no file system or object store shows them, and some refuse them.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


#: How far a relative time (``-30d``) may reach: far enough for any real window, and inside what a datetime holds.
MAX_RELATIVE_MINUTES = 100 * 366 * 24 * 60
_MINUTES_PER_UNIT = {"m": 1, "h": 60, "d": 24 * 60, "w": 7 * 24 * 60}


def bounded_relative_time(text: str) -> str:
    """``text`` (a relative time such as ``-30d``), or ValueError when it reaches past 100 years.

    A larger amount overflowed Python's timedelta (or the date range) in the
    middle of a run; pydantic turns this error into a problem up front.
    """
    amount, unit = re.fullmatch(r"\s*[+-]?(\d+)\s*([mhdw])\s*", text).groups()
    if int(amount) * _MINUTES_PER_UNIT[unit] > MAX_RELATIVE_MINUTES:
        raise ValueError("a relative time reaches at most 100 years (36600d, 5228w)")
    return text


def date_format_problems(pattern: str) -> list[Problem]:
    """``iso``, a moment.js token, or a strftime pattern whose every ``%`` starts a date or time directive.

    Arrow writes an unknown directive (``%Q``) as something else and a lone
    ``%`` as itself, so such a pattern would fill the file with the same
    meaningless text on every row; it is refused up front instead.
    """
    if pattern in MOMENT_FORMATS:
        return []
    if "%" not in pattern:
        return [Problem("date_format", pattern, "use iso, L, LL, LLL or a strftime pattern containing %")]
    problems: list[Problem] = []
    if CONTROL_CHARACTERS.search(pattern):
        problems.append(Problem("date_format", pattern, "may not contain control characters (line breaks, tabs)"))
    bad, dated = _strftime_directives(pattern)
    if bad:
        shown = ", ".join(dict.fromkeys(bad))
        problems.append(
            Problem("date_format", pattern, f"not a strftime directive: {shown}; use e.g. %Y %m %d %H %M %S (%% for a literal %)")
        )
    elif not dated:
        problems.append(
            Problem("date_format", pattern, "names no date or time part (e.g. %Y-%m-%d); it would write the same text for every date")
        )
    return problems


def _strftime_directives(pattern: str) -> tuple[list[str], bool]:
    """The pattern's unknown directives (as written), and whether it has at least one date or time directive."""
    bad: list[str] = []
    dated = False
    i = 0
    while i < len(pattern):
        if pattern[i] != "%":
            i += 1
            continue
        head = pattern[i + 1 : i + 2]
        if head == "%":
            i += 2
            continue
        if head in STRFTIME_MODIFIED:
            letter = pattern[i + 2 : i + 3]
            if letter in STRFTIME_MODIFIED[head]:
                dated, i = True, i + 3
                continue
            bad.append(pattern[i : i + 3] or "%")
            i += 3
            continue
        if head and head in STRFTIME_DIRECTIVES:
            dated, i = True, i + 2
            continue
        bad.append(pattern[i : i + 2] if head else "% at the end")
        i += 2
    return bad, dated


def filename_problems(template: str) -> list[Problem]:
    """Unknown placeholders, control characters and names that could leave their folder, found before any data moves."""
    problems = []
    if CONTROL_CHARACTERS.search(template):
        problems.append(Problem("filename", template, "may not contain control characters (line breaks, tabs, NUL...)"))
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [*problems, Problem("filename", template, f"not a valid template: {exc}")]
    for _literal, name, spec, conversion in parsed:
        if name is not None and name not in FILENAME_PLACEHOLDERS:
            problems.append(
                Problem(
                    "filename", template, f"unknown placeholder {{{name}}}; use {', '.join('{' + p + '}' for p in FILENAME_PLACEHOLDERS)}"
                )
            )
        elif spec or conversion:
            problems.append(Problem("filename", template, f"placeholder {{{name}}} takes no format spec or conversion"))
    # Placeholder values are sanitised to plain names (never "", "." or ".."), so a sample rendering
    # has the same folder structure as every real one: check the segments of that.
    sample = "".join(literal + ("x" if name is not None else "") for literal, name, _, _ in parsed)
    if sample.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", sample):
        problems.append(Problem("filename", template, "must be relative to the destination folder"))
    if any(seg in ("..", ".") for seg in re.split(r"[/\\]", sample)):
        problems.append(Problem("filename", template, "may not contain '..' or '.' path segments"))
    if not template.strip() or template.endswith(("/", "\\")):
        problems.append(Problem("filename", template, "must name a file"))
    return problems
