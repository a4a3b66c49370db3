"""The engine: runs deployments step by step, durably, and keeps environments tidy.

It calls the pure layers (strategies, planner) to decide and the adapters
(providers, router, store) to act. It never renders output: progress goes to
a ``Reporter`` the caller passes in.
"""
