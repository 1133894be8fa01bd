"""How numbers print in the results table: fractions as percentages, differences as signed points."""

from __future__ import annotations


def percent(x: float | None) -> str:
    """0.6190 → "61.90"; None → "–"."""
    return "–" if x is None else f"{100 * x:.2f}"


def signed_points(x: float | None) -> str:
    """0.0236 → "+2.36" (percentage points); None → "–"."""
    return "–" if x is None else f"{100 * x:+.2f}"
