"""llmops: declarative LLM-server experiments (llama.cpp, vLLM, ...) on local and SSH hosts."""

__version__ = "0.1.0"
