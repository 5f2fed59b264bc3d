"""Returns and the group-relative leave-one-out baseline (SPEC §2).

Time step t is one round. Rewards reach these functions already divided by the per-game reward
scale c (IPD 5, split games 100): that division is the caller's job.

- ``discounted_returns``: reward-to-go  G_t = Σ_{s≥t} γ^{s−t} r_s.
- ``group_loo``: per-round leave-one-out advantage within a seed group of K games,
  A^j_t = G^j_t − (1/(K−1)) Σ_{j'≠j} G^{j'}_t  (no std scaling, no critic).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def discounted_returns(rewards: npt.ArrayLike, gamma: float) -> FloatArray:
    """Reward-to-go along the last axis: G_t = Σ_{s≥t} γ^{s−t} r_s = r_t + γ G_{t+1}.

    ``rewards`` has shape [..., T] and is already divided by the per-game scale c; padded rounds
    (games shorter than T) must hold reward 0 so they add nothing. Returns float64 of the same
    shape. Linear in T, vectorised over the leading axes.
    """
    r = np.asarray(rewards, dtype=np.float64)
    returns = np.empty_like(r)
    running = np.zeros(r.shape[:-1], dtype=np.float64)
    for t in range(r.shape[-1] - 1, -1, -1):
        running = r[..., t] + gamma * running
        returns[..., t] = running
    return returns


def group_loo(
    returns: npt.ArrayLike,
    group_ids: npt.ArrayLike,
    *,
    mask: npt.ArrayLike | None = None,
    ignore_groups: bool = False,
) -> FloatArray:
    """Leave-one-out advantage per round within seed groups.

    A^j_t = G^j_t − (1/(n_t − 1)) Σ_{j' ∈ g(j), j'≠j, m^{j'}_t=1} G^{j'}_t, where g(j) is the group
    of game j and n_t the number of games of g(j) that have round t (``mask``; all rounds exist
    if ``mask`` is None). A game alone at a round (n_t = 1) gets no baseline there: A = G.
    Masked-out entries are 0.

    Groups used:
    - ``ignore_groups=True`` (ablation): one group holding the whole batch.
    - every group of size 1 (each game has its own seed): one group holding the whole batch.
    - otherwise the given groups (sizes may differ, e.g. 8 and 4).

    Args:
        returns: [games, T] returns G (e.g. from ``discounted_returns``).
        group_ids: [games] integer seed-group id of each game.
        mask: optional [games, T], 1 where the round exists.
        ignore_groups: take the leave-one-out over the whole batch regardless of groups.

    Raises:
        ValueError: on shape mismatches, or when groups are mixed (some of size 1, some larger):
            a singleton game has no group to compare with, and silently pooling it with the
            whole batch would mix two baselines in one batch.
    """
    g = np.asarray(returns, dtype=np.float64)
    ids = np.asarray(group_ids)
    if g.ndim != 2:
        raise ValueError(f"returns must be [games, T], got shape {g.shape}")
    if ids.shape != (g.shape[0],):
        raise ValueError(f"group_ids must have shape ({g.shape[0]},), got {ids.shape}")
    m = np.ones_like(g) if mask is None else np.asarray(mask, dtype=np.float64)
    if m.shape != g.shape:
        raise ValueError(f"mask shape {m.shape} != returns shape {g.shape}")

    _, inverse, sizes = np.unique(ids, return_inverse=True, return_counts=True)
    if ignore_groups or np.all(sizes == 1):
        inverse = np.zeros(g.shape[0], dtype=np.int64)
    elif np.any(sizes == 1):
        raise ValueError(
            "mixed seed-group sizes: some groups have one game and others more; use groups "
            "of size >= 2 everywhere, all of size 1 (whole-batch baseline), or ignore_groups"
        )
    onehot = np.zeros((g.shape[0], inverse.max(initial=0) + 1))
    onehot[np.arange(g.shape[0]), inverse] = 1.0

    gm = np.where(m > 0, g, 0.0)
    group_sum = (onehot.T @ gm)[inverse]  # [games, T]: Σ over the game's group, per round
    group_count = (onehot.T @ m)[inverse]
    others = group_count - m  # how many other games of the group have this round
    baseline = np.divide(group_sum - gm, others, out=np.zeros_like(g), where=others > 0)
    return np.where(m > 0, g - baseline, 0.0)
