"""Output quality next to speed: do two servers (backends, quantisations, settings) answer alike?

Pure scoring lives in `agreement` (token sequences and log-probabilities) and `tasks` (exact-answer
tasks llmops makes itself); `prompts` holds the shipped prompt set; `runner` asks a server's
OpenAI-compatible API at temperature 0 and keeps every completion; `summary` compares variants.
"""
