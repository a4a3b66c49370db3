"""Files `kiln init` writes: a starter kiln.yaml and app (same as examples/hello)."""
