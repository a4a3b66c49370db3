"""kiln's benchmarks: ``make bench`` runs every suite and prints one table.

Each suite module exposes ``run() -> list[Result]``. Every result compares a
kiln measurement with a baseline measured in the same run, because these
machines are noisy: the ratio is what to read, not the absolute numbers.
"""
