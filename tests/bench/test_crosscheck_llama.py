"""Our Gen speed against llama-server's own `timings`, for real (the cached llama-server and
tiny model, as in test_real_servers.py), and the disagreement flag through a throttled tunnel."""

from __future__ import annotations

from urllib.parse import urlsplit

from .conftest import run_bench, timing_retries
from .test_real_servers import llama_server  # noqa: F401 - the module-scoped server fixture
from .throttle import ThrottledProxy


def _decode_disagreement(url: str) -> list[tuple[int, dict]]:
    # 256 tokens: at ~1 ms a token, one late SSE read shifts a 64-token response by several per cent
    run = run_bench(url, concurrency=[1, 4], max_tokens=256, model="tiny", ignore_eos=True)
    out = []
    for level in run.levels:
        server = level["server"]
        print(f"c={level['concurrency']}: client {server['client_decode_tps_p50']:.1f} tok/s, server "
              f"{server['server_decode_tps_p50']:.1f} tok/s ({server['decode_disagree_pct']:+.2f} %)")
        assert server["source"] == "timings" and server["requests"] == level["succeeded"] == level["concurrency"]
        # Correctness first: a unit or count slip (ms for s, per-level for per-response) puts the
        # two far apart whatever the host is doing.
        assert 0.5 < server["client_decode_tps_p50"] / server["server_decode_tps_p50"] < 2.0, server
        out.append((level["concurrency"], server))
    return out


@timing_retries
def test_client_decode_speed_matches_llama_server_timings(llama_server: str) -> None:  # noqa: F811
    """Within 5 % at c <= 4 (the bar of issue 12). A shared CI host can delay one read of a run,
    so a disturbed attempt gets another (timing_retries); a wrong computation fails all three.
    benchmarks/crosscheck_timings.py prints the figures over several rounds."""
    for concurrency, server in _decode_disagreement(llama_server):
        assert abs(server["decode_disagree_pct"]) < 5.0, (concurrency, server)


def test_throttled_tunnel_is_flagged(llama_server: str) -> None:  # noqa: F811
    port = urlsplit(llama_server).port
    with ThrottledProxy(port, bytes_per_s=4000) as proxy:
        run = run_bench(proxy.url, concurrency=[1], max_tokens=48, model="tiny", ignore_eos=True)
    (level,) = run.levels
    print("throttled:", level["flags"])
    assert level["server"]["decode_disagree_pct"] < -10, level["server"]
    assert any("client and server disagree" in f for f in level["flags"]), level
