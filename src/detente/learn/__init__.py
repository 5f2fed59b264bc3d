"""Learning: returns, group baselines, credits (naive, sum of rewards, Advantage Alignment), loss."""
