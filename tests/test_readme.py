"""The README is the front door: its two set-up commands are what CI and users run."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", quick, flags=re.S)]


def test_readme_has_exactly_two_setup_commands():
    app, tests = readme_commands()
    assert app.endswith("contextrast app") and "pip install torch==2.13.0" in app
    assert tests.endswith("pytest -q") and '".[test]"' in tests


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_shipped_checkpoints_are_listed_in_the_readme():
    text = (ROOT / "README.md").read_text()
    cards = sorted((ROOT / "checkpoints").glob("*/model_card.json"))
    assert cards
    for card in cards:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{card.parent.name}` |")), None)
        assert row is not None, f"{card.parent.name} is not listed in the README"
        miou = json.loads(card.read_text())["metrics"]["val_miou"]
        assert f"| {100 * miou:.2f} |" in row, (row, miou)


def test_the_readme_lists_every_registered_variant_of_each_switch():
    from contextrast.models import ALIGNS, CHANNEL_ENERGIES, CONTEXTS, SPATIAL_ENERGIES

    text = " ".join((ROOT / "README.md").read_text().split())
    for key, registry in (("align", ALIGNS), ("context", CONTEXTS), ("channel_energy", CHANNEL_ENERGIES),
                          ("spatial_energy", SPATIAL_ENERGIES)):
        listed = "{" + ", ".join(f"`{n}`" for n in registry.choices()) + "}"
        assert f"`{key}` ∈ {listed}" in text, key
