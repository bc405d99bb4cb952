"""The emulator's `/metrics`: counters kept the way the real servers keep them, rendered in
their dialect, so the scrape and delta logic can be tested fast against a known truth.

A request is counted when its stream ends (llama-server counts it when its slot is released),
with its decode time taken as a server takes it: from its first token written to its last.
The names and shapes are those of the pages saved in tests/fixtures/metrics/ (llama-server
11434.0.0, vLLM 0.32.0); `garbled` serves a page that is not Prometheus text at all.
"""

from __future__ import annotations

from dataclasses import dataclass

DIALECTS = ("llama.cpp", "vllm", "garbled")


@dataclass
class Counters:
    requests: int = 0
    tokens: int = 0
    prompt_tokens: int = 0
    decode_steps: int = 0  # tokens after each request's first
    decode_s: float = 0.0  # first to last token, summed over requests
    e2e_s: float = 0.0

    def add(self, tokens: int, prompt_tokens: int, decode_s: float, e2e_s: float) -> None:
        self.requests += 1
        self.tokens += tokens
        self.prompt_tokens += prompt_tokens
        self.decode_steps += max(tokens - 1, 0)
        self.decode_s += decode_s
        self.e2e_s += e2e_s

    def render(self, dialect: str, model: str) -> str:
        if dialect == "llama.cpp":
            return _llama(self)
        if dialect == "vllm":
            return _vllm(self, model)
        return "<html><body>metrics are somewhere else</body></html>\n{not: prometheus}\n"


def _llama(c: Counters) -> str:
    rate = c.decode_steps / c.decode_s if c.decode_s > 0 else 0
    rows = [("prompt_tokens_total", "counter", c.prompt_tokens), ("prompt_seconds_total", "counter", 0.001 * c.requests),
            ("tokens_predicted_total", "counter", c.tokens),
            # six significant digits, as llama-server's C++ stream prints them
            ("tokens_predicted_seconds_total", "counter", float(f"{c.decode_s:.6g}")),
            ("predicted_tokens_seconds", "gauge", float(f"{rate:.6g}")), ("requests_processing", "gauge", 0)]
    out = []
    for name, kind, value in rows:
        out += [f"# HELP llamacpp:{name} emulated", f"# TYPE llamacpp:{name} {kind}", f"llamacpp:{name} {value:g}"]
    return "\n".join(out) + "\n"


def _vllm(c: Counters, model: str) -> str:
    labels = f'engine="0",model_name="{model}"'
    out = ["# HELP vllm:generation_tokens_total emulated", "# TYPE vllm:generation_tokens_total counter",
           f"vllm:generation_tokens_total{{{labels}}} {float(c.tokens)}",
           f"vllm:prompt_tokens_total{{{labels}}} {float(c.prompt_tokens)}",
           f"vllm:request_success_total{{{labels},finished_reason=\"length\"}} {float(c.requests)}"]
    for name, total in (("request_generation_tokens", float(c.tokens)), ("request_decode_time_seconds", c.decode_s),
                        ("e2e_request_latency_seconds", c.e2e_s)):
        out += [f"# TYPE vllm:{name} histogram", f'vllm:{name}_bucket{{{labels},le="+Inf"}} {float(c.requests)}',
                f"vllm:{name}_count{{{labels}}} {float(c.requests)}", f"vllm:{name}_sum{{{labels}}} {total!r}"]
    out += [f"vllm:inter_token_latency_seconds_count{{{labels}}} {float(c.decode_steps)}",
            f"vllm:inter_token_latency_seconds_sum{{{labels}}} {c.decode_s!r}"]
    return "\n".join(out) + "\n"
