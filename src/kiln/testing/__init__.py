"""Helpers for tests, demos and benchmarks of kiln (shipped in the package, like click.testing).

Nothing here may be imported by kiln's own runtime code.
"""
