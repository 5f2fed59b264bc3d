"""Engines (transformers + peft) and the embedded models; importing registers ``tiny``."""

from detente.lm import embedded as _embedded  # noqa: F401  (registers the embedded models)
