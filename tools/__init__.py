"""Developer tools (not deployed)."""
