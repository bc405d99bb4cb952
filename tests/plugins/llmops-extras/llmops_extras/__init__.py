"""Example plugins for llmops: a reporter (report.py) and a collector (collect.py)."""
