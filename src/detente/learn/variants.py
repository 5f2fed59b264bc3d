"""The loss variants a run chooses with ``train.loss`` (:mod:`detente.learn.loss` holds the math).

Torch-free, so that the config (and every command that only reads configs) imports it without
importing torch; :mod:`detente.learn.loss` re-exports it.
"""

from __future__ import annotations

from enum import StrEnum


class LossType(StrEnum):
    """How the trainer turns an iteration's credited tokens into optimizer steps.

    - ``reinforce``: the truncated-importance-weighted REINFORCE loss (:func:`~detente.learn.loss.
      token_loss`), one optimizer step per iteration.
    - ``ppo``: the PPO-clipped surrogate (:func:`~detente.learn.loss.ppo_token_loss`; Schulman et
      al. 2017), ``train.ppo_epochs`` optimizer steps over the same data, ratios against the
      policy that played the iteration — with Advantage Alignment credits, Proximal Advantage
      Alignment (Duque et al., "Advantage Alignment Algorithms", ICLR 2025).
    """

    REINFORCE = "reinforce"
    PPO = "ppo"
