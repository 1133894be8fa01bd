"""Where the real-data tests find CamVid: `$CAMVID` when set, else `../shared/data/camvid` beside the checkout.

Tests that need it skip cleanly when neither exists (a fresh clone has no dataset)."""

from __future__ import annotations

import os
from pathlib import Path

CAMVID = Path(os.environ.get("CAMVID") or Path(__file__).resolve().parents[2] / "shared/data/camvid")
