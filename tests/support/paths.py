"""Where things are: the project root and the demo configuration the tests copy."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "include" / "privacy"
DEMO_SEED = DEMO_CONFIG / "seed" / "demo_shop.sql"
