"""Tests run offline; models build into $DETENTE_CACHE (CI sets it inside the clone)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
