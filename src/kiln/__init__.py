"""kiln: immutable infrastructure — bake, release, deploy by replacement, detect drift."""

__version__ = "0.1.0"
