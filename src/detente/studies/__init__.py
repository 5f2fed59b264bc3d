"""Studies that train and measure: the demo, learned exploiters, the league report."""
