"""CSV cells that a spreadsheet shows as text and never runs as a formula.

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is taken for a formula by
Excel, LibreOffice and Google Sheets (CSV injection); such a cell is written with a leading `'`,
which they show as text. Every CSV we write passes its cells through `cell`.
"""

from typing import Final

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """`value` as a CSV cell that cannot start a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def row(values: tuple[object, ...] | list[object]) -> list[str]:
    """Every cell of a row, made safe."""
    return [cell(value) for value in values]
