"""Built-in command templates (package data, installed as llmops.templates)."""
