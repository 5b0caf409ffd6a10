"""Baselines the seeds compare against, behind the same :class:`~paramcast.methods.Method` interface."""
