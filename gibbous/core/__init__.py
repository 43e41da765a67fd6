"""The pure core shared by the webhook, the extender and the autoscaler.

Nothing in this package performs I/O, reads a clock or logs: every function
takes plain data (Kubernetes objects as dicts, catalog rows, configuration) and
returns values. Time, where it matters, is a parameter. The import-linter
contracts in pyproject.toml keep it that way.
"""
