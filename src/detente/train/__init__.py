"""The training driver: the trainer (rollouts, updates, checkpoints, evaluation while training),
its trackers and its data-parallel learners; above the formulas (learn) and the measures (evaluate)."""
