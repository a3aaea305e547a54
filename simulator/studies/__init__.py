"""Studies over many runs: sweeps, comparisons, reports and result loading."""
