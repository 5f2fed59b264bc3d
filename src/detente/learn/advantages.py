"""Returns and the group-relative leave-one-out baseline (SPEC §2).

Time step t is one round. Rewards reach these functions already divided by the per-game reward
scale c (IPD 5, split games 100): that division is the caller's job.

- ``discounted_returns``: reward-to-go  G_t = Σ_{s≥t} γ^{s−t} r_s.
- ``group_loo``: per-round leave-one-out advantage among the K games of a seed group, per seat
  position, A^j_t = G^j_t − (1/(K−1)) Σ_{j'≠j} G^{j'}_t  (no std scaling, no critic); when every
  seed group holds one game (K = 1), over all of that seat position's games in the batch.
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
    seats: npt.ArrayLike | None = None,
    *,
    mask: npt.ArrayLike | None = None,
    ignore_groups: bool = False,
) -> FloatArray:
    """Leave-one-out advantage per round within (seed group, seat position) cells.

    A^j_t = G^j_t − (1/(n_t − 1)) Σ_{j' ∈ c(j), j'≠j, m^{j'}_t=1} G^{j'}_t, where c(j) is the cell
    of row j and n_t the number of rows of c(j) that have round t (``mask``; all rounds exist
    if ``mask`` is None). A row alone at a round (n_t = 1) gets no baseline there: A = G.
    Masked-out entries are 0.

    A row is one seat of one game; rows of different seat positions are never compared, so a
    baseline never holds the co-player's return from the same game (which depends on the row's
    own actions). Cells used:
    - ``ignore_groups=True`` (ablation): c(j) = all rows of j's seat position in the batch.
    - every (group, seat) cell holds one row (each game has its own seed, K = 1): likewise all
      rows of j's seat position in the batch.
    - otherwise c(j) = the rows of j's seed group and seat position (sizes may differ, e.g. 8
      and 4).

    Args:
        returns: [rows, T] returns G (e.g. from ``discounted_returns``).
        group_ids: [rows] integer seed-group id of each row's game.
        seats: [rows] integer seat position of each row; None: every row the same position.
        mask: optional [rows, T], 1 where the round exists.
        ignore_groups: ignore the seed groups (leave-one-out over each seat position's rows).

    Raises:
        ValueError: on shape mismatches, or when cells are mixed (some of one row, some larger):
            a singleton row has no group to compare with, and silently pooling it with its
            whole seat position would mix two baselines in one batch.
    """
    g = np.asarray(returns, dtype=np.float64)
    ids = np.asarray(group_ids)
    if g.ndim != 2:
        raise ValueError(f"returns must be [rows, T], got shape {g.shape}")
    if ids.shape != (g.shape[0],):
        raise ValueError(f"group_ids must have shape ({g.shape[0]},), got {ids.shape}")
    position = np.zeros_like(ids) if seats is None else np.asarray(seats)
    if position.shape != ids.shape:
        raise ValueError(f"seats must have shape ({g.shape[0]},), got {position.shape}")
    m = np.ones_like(g) if mask is None else np.asarray(mask, dtype=np.float64)
    if m.shape != g.shape:
        raise ValueError(f"mask shape {m.shape} != returns shape {g.shape}")

    cells = np.stack([ids, position], axis=1).reshape(g.shape[0], 2)
    _, inverse, sizes = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    if ignore_groups or np.all(sizes == 1):
        _, inverse = np.unique(position, return_inverse=True)
    elif np.any(sizes == 1):
        raise ValueError(
            "mixed seed-group sizes: some (group, seat) cells have one row and others more; use "
            "groups of size >= 2 everywhere, all of size 1 (per-seat baseline over the batch), "
            "or ignore_groups"
        )
    inverse = inverse.reshape(-1)
    onehot = np.zeros((g.shape[0], inverse.max(initial=0) + 1))
    onehot[np.arange(g.shape[0]), inverse] = 1.0

    gm = np.where(m > 0, g, 0.0)
    cell_sum = (onehot.T @ gm)[inverse]  # [rows, T]: Σ over the row's cell, per round
    cell_count = (onehot.T @ m)[inverse]
    others = cell_count - m  # how many other rows of the cell have this round
    baseline = np.divide(cell_sum - gm, others, out=np.zeros_like(g), where=others > 0)
    return np.where(m > 0, g - baseline, 0.0)
