"""An example third-party backend: llama-server with one thread, from this package's template."""

from pathlib import Path

from llmops.backends.llamacpp import LlamaCpp


class TinyLlama(LlamaCpp):
    kind = "tinyllama"
    description = "llama-server pinned to one thread (example plugin)"
    template = "tinyllama.j2"
    template_dirs = (Path(__file__).resolve().parent / "templates",)
