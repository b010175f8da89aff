"""The project itself: the README and docs match the code, the runbook covers every outcome, and
the tree keeps its layout rules."""
