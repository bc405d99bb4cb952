"""`llmops bench URL`: the load generator on its own, against any OpenAI-compatible server.

Prints llmapibenchmark's table (same columns, same meaning) plus percentiles and an error
summary, or JSON / CSV. The definitions of every figure are in docs/metrics.md.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import ssl
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from llmops.bench import http
from llmops.bench import metrics as bench_metrics
from llmops.bench.client import RequestOptions, RequestRecord, Session
from llmops.bench.engine import Bench, LoadSpec
from llmops.bench.progress import LevelProgress
from llmops.bench.prompts import PromptSpec, load_prompt_file
from llmops.bench.stats import repeat_note
from llmops.errors import LlmopsError
from llmops.execute.console import Console

DEFAULT_CONCURRENCY = "1,2,4,8,16,32,64,128"  # llmapibenchmark's
DEFAULT_PROMPT = "Write a long story, no less than 10,000 words, starting from a long, long time ago."

# the per-level fields of --format csv, in this order (other scalar fields follow)
CSV_LEVEL_FIELDS = [
    "concurrency", "rate", "requests", "succeeded", "failed", "success_rate", "gen_tps", "prompt_tps", "ttft_min_s",
    "ttft_max_s", "total_s", "request_throughput", "steady_gen_tps", "goodput_rps", "ttft_mean_s", "ttft_p50_s",
    "ttft_p90_s", "ttft_p99_s", "ttfc_p50_s", "tpot_mean_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms",
    "itl_mean_ms", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms", "itl_max_ms", "e2e_mean_s", "e2e_p50_s", "e2e_p90_s",
    "e2e_p99_s", "e2e_max_s", "queue_p50_s", "queue_p99_s", "completion_tokens", "prompt_tokens", "full_length",
    "reasoning_tokens", "errors",
]
CSV_REQUEST_FIELDS = [
    "level", "concurrency", "index", "phase", "ok", "status", "error_kind", "error", "t_scheduled", "t_start", "t_send",
    "t_headers", "t_first_chunk", "t_first_token", "t_first_content", "t_first_reasoning", "t_last_token", "t_end",
    "ttft", "ttfc", "tpot", "e2e", "queue_s", "connect_s", "prompt_tokens", "completion_tokens", "reasoning_tokens",
    "cached_tokens", "tokens_source", "streamed_tokens", "per_chunk_counts", "finish_reason", "max_tokens",
    "response_id",
]
SLO_KEYS = {"ttft": "ttft_ms", "tpot": "tpot_ms", "itl": "itl_ms", "e2e": "e2e_ms"}


# -- option parsing ------------------------------------------------------------------------

def parse_int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of whole numbers", param_hint=name) from None
    if not values or any(v < 1 for v in values):
        raise click.BadParameter("give one or more numbers, each at least 1", param_hint=name)
    return sorted(set(values))


def parse_rates(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint="--rate") from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise click.BadParameter("request rates must be positive numbers (requests per second)", param_hint="--rate")
    return values


def parse_duration_ms(text: str) -> float:
    """'500ms', '0.5s', '250us' or a bare number of milliseconds, as milliseconds."""
    value = text.strip().lower()
    for suffix, factor in (("ms", 1.0), ("us", 0.001), ("µs", 0.001), ("s", 1000.0)):
        if value.endswith(suffix):
            number, scale = value[: -len(suffix)], factor
            break
    else:
        number, scale = value, 1.0
    try:
        result = float(number) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a time (e.g. 500ms, 0.5s)") from None
    if not (result > 0 and math.isfinite(result)):
        raise ValueError(f"{text!r}: a limit must be positive")
    return result


def parse_slo(text: str) -> bench_metrics.Slo:
    limits: dict[str, float] = {}
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or key not in SLO_KEYS:
            raise click.BadParameter(f"{part!r}: expected NAME=TIME with NAME one of {', '.join(SLO_KEYS)}",
                                     param_hint="--slo")
        try:
            limits[SLO_KEYS[key]] = parse_duration_ms(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--slo") from None
    if not limits:
        raise click.BadParameter("no limits given (e.g. ttft=500ms,tpot=50ms)", param_hint="--slo")
    return bench_metrics.Slo(**limits)


def _header_key(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from llmops.load.validate import header_safe

    try:
        return header_safe(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api-key") from None


def endpoints(url: str) -> tuple[str, str, str]:
    """(server root, OpenAI base /v1, chat completions URL) from what the user typed."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="URL")
    if parts.username or parts.password:
        raise click.BadParameter("credentials in the URL are not supported; use --api-key", param_hint="URL")
    try:
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError:
        raise click.BadParameter(f"{url!r} has a bad port", param_hint="URL") from None
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        v1 = path[: -len("/chat/completions")]
        chat = path
    elif path.endswith("/v1"):
        v1, chat = path, path + "/chat/completions"
    else:
        v1, chat = path + "/v1", path + "/v1/chat/completions"
    root = v1[:-3] if v1.endswith("/v1") else v1
    return origin + root, origin + v1, origin + chat


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


# -- output --------------------------------------------------------------------------------

def finite(value: Any) -> Any:
    """The same data with every NaN or infinity replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def level_label(level: dict[str, Any]) -> str:
    return f"rate {level['rate']:g}/s" if level.get("rate") is not None else f"c={level['concurrency']}"


def error_lines(levels: list[dict[str, Any]]) -> list[str]:
    """'c=16: 6 x http_503 at 0.02-0.03 s: <example>' per kind of failure."""
    lines = []
    for lv in levels:
        for err in lv.get("errors") or []:
            lo, hi = err.get("after_s_min"), err.get("after_s_max")
            when = "" if lo is None else (f" at {lo:.2f} s" if f"{lo:.2f}" == f"{hi:.2f}" else
                                          f" at {lo:.2f}-{hi:.2f} s")
            example = " ".join(str(err.get("example") or "").split())
            lines.append(f"{level_label(lv)}: {err['count']} x {err['kind']}{when}: {example}")
    return lines


def note_lines(levels: list[dict[str, Any]], calibration: dict[str, Any]) -> list[str]:
    lines = []
    for lv in levels:
        sources = lv.get("tokens_source") or {}
        if sources.get("estimate"):
            lines.append(f"{level_label(lv)}: token counts of {sources['estimate']} request(s) are estimates "
                         "(one token per streamed event): the server sent neither usage nor timings")
        if sources.get("timings"):
            lines.append(f"{level_label(lv)}: token counts of {sources['timings']} request(s) from llama.cpp timings "
                         "(no usage)")
        if lv.get("succeeded") and lv.get("full_length", 0) < lv["succeeded"]:
            lines.append(f"{level_label(lv)}: {lv['full_length']}/{lv['succeeded']} requests produced max-tokens "
                         "tokens (the rest stopped early)")
    if calibration.get("exact_prompt_tokens") is False and "tokenize" in calibration:
        lines.append("input length is approximate: the server has no usable /tokenize "
                     f"({calibration.get('calibration_error') or calibration.get('tokenize')})")
    if calibration.get("count_extras"):
        lines.append(f"per-event token counts not requested: {calibration['count_extras']}")
    return lines


def csv_text(rows: list[dict[str, Any]], fields: list[str]) -> str:
    extra = sorted({k for row in rows for k, v in row.items()
                    if k not in fields and (v is None or isinstance(v, (int, float, str, bool)))})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields + extra, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = {}
        for key, value in row.items():
            if key == "errors" and isinstance(value, list):
                value = "; ".join(f"{e['count']}x {e['kind']}" for e in value)
            elif isinstance(value, float):
                value = repr(round(value, 6)) if math.isfinite(value) else ""
            elif isinstance(value, (dict, list)):
                value = json.dumps(value, separators=(",", ":"))
            flat[key] = value
        writer.writerow(flat)
    return out.getvalue()


# -- the command ---------------------------------------------------------------------------

async def first_model(v1: str, api_key: str | None, ssl_context: ssl.SSLContext | None) -> str:
    async with Session(ssl_context=ssl_context) as session:
        try:
            status, doc = await session.fetch_json(v1 + "/models", api_key=api_key, timeout=30.0)
        except (OSError, asyncio.TimeoutError, ssl.SSLError, http.ConnectionLost, http.HttpError) as exc:
            raise LlmopsError(f"cannot list models at {_public_url(v1)}/models ({type(exc).__name__}: {exc}); "
                              "pass --model") from None
    models = doc.get("data") if isinstance(doc, dict) else None
    if status != 200 or not isinstance(models, list) or not models or not isinstance(models[0], dict):
        raise LlmopsError(f"{_public_url(v1)}/models answered HTTP {status} without a model list; pass --model")
    return str(models[0].get("id"))


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("url")
@click.option("-m", "--model", default=None, help="Model name. Default: the first id of GET /v1/models.")
@click.option("-c", "--concurrency", default=None, metavar="C[,C...]",
              help=f"Concurrency levels, run in ascending order. Default: {DEFAULT_CONCURRENCY} "
                   "(with --rate: the cap on requests in flight, none by default).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Output tokens asked for per request.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="What goes to stdout: the llmapibenchmark table, JSON or CSV (progress: stderr).")
@click.option("-k", "--api-key", default=None, callback=_header_key, help="Sent as 'Authorization: Bearer'; never printed.")
@click.option("--requests", type=click.IntRange(min=1), default=None,
              help="Closed loop: N measured requests per level, c in flight (open loop: arrivals per level).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Closed loop: keep c in flight for S seconds per level (open loop: arrivals for S seconds).")
@click.option("--warmup", type=click.IntRange(min=0), default=0, show_default=True,
              help="Requests per level sent first and left out of the figures.")
@click.option("--rate", default=None, metavar="R[,R...]", help="Open loop: requests per second, one level each.")
@click.option("--burstiness", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Open loop: gamma shape of the arrival gaps (1 = Poisson, the default).")
@click.option("--input-tokens", type=click.IntRange(min=1), default=None,
              help="Synthetic prompts of exactly N tokens (made exact with the server's /tokenize).")
@click.option("--shared-prefix-tokens", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --input-tokens: the first K tokens are the same in every prompt.")
@click.option("-p", "--prompt", default=None, help="A fixed prompt (default: llmapibenchmark's).")
@click.option("--prompt-file", type=click.Path(dir_okay=False), default=None,
              help="JSONL/JSON of prompts: {\"prompt\"}, {\"messages\"} or ShareGPT {\"conversations\"}.")
@click.option("--unique/--no-unique", default=True, show_default=True,
              help="Make every prompt unique, so prefix caches do not flatter the server.")
@click.option("--ignore-eos/--no-ignore-eos", default=None,
              help="Ask the server to ignore end-of-sequence. Default: on with --input-tokens, off otherwise.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Per-request timeout in seconds (off unless set); a timed-out request says so.")
@click.option("--slo", default=None, metavar="ttft=500ms,tpot=50ms",
              help="Limits for goodput: ttft, tpot, itl (the worst gap), e2e.")
@click.option("--save-requests", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write every request's record (warm-up included) to this JSONL file.")
@click.option("--csv-requests", is_flag=True, help="With CSV output: one row per request instead of per level.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature sent with each request.")
@click.option("--seed", type=int, default=None, help="Sent as the request's seed; also seeds prompts and arrivals.")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
              help="Nucleus sampling, sent as top_p with each request.")
@click.option("--top-k", type=click.IntRange(min=0), default=None, help="Sent as top_k with each request.")
@click.option("--min-p", type=click.FloatRange(min=0, max=1), default=None, help="Sent as min_p with each request.")
@click.option("--repeat-penalty", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Sent under both names servers use: repeat_penalty (llama.cpp) and repetition_penalty (vLLM).")
@click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate.")
@click.option("--repeat", default="1", show_default=True, metavar="N|auto",
              help="Run each level N times (median and 95 % interval), or 'auto': until the Gen TPS interval "
                   "is within --precision (at most --max-repeat times).")
@click.option("--max-repeat", type=click.IntRange(min=1), default=10, show_default=True,
              help="With --repeat auto: the most times one level is run.")
@click.option("--precision", type=click.FloatRange(min=0, min_open=True, max=1), default=0.05, show_default=True,
              help="With --repeat auto: the interval's half-width, as a share of the median, to reach.")
@click.option("--server-metrics", is_flag=True,
              help="Scrape the server's /metrics (llama-server --metrics, vLLM) before and after each level and "
                   "compare its token counts and decode speed with ours.")
@click.pass_context
def bench(ctx: click.Context, url: str, model: str | None, concurrency: str | None, max_tokens: int, fmt: str,
          api_key: str | None, requests: int | None, duration: float | None, warmup: int, rate: str | None,
          burstiness: float | None, input_tokens: int | None, shared_prefix_tokens: int, prompt: str | None,
          prompt_file: str | None, unique: bool, ignore_eos: bool | None, timeout: float | None, slo: str | None,
          save_requests: str | None, csv_requests: bool, temperature: float | None, seed: int | None,
          top_p: float | None, top_k: int | None, min_p: float | None, repeat_penalty: float | None,
          insecure: bool, repeat: str, max_repeat: int, precision: float, server_metrics: bool) -> None:
    """Benchmark an OpenAI-compatible server at URL (http://host:port, .../v1 or .../v1/chat/completions).

    Default load: a burst of c requests per concurrency level, as llmapibenchmark does.

    \b
    Examples:
      llmops bench http://127.0.0.1:8080 -c 1,4,16 --max-tokens 128
      llmops bench http://127.0.0.1:8000/v1 --rate 2,4 --duration 30 --format json > levels.json
      llmops bench http://127.0.0.1:8080 --temperature 0.7 --top-p 0.9 --top-k 40 --min-p 0.05
    """
    root, v1, chat_url = endpoints(url)
    rates = parse_rates(rate) if rate is not None else None
    if concurrency is not None:
        levels_c = parse_int_list(concurrency, "--concurrency")
    else:
        levels_c = [] if rates else parse_int_list(DEFAULT_CONCURRENCY, "--concurrency")
    if requests is not None and duration is not None:
        raise click.UsageError("give --requests or --duration, not both")
    if burstiness is not None and not rates:
        raise click.UsageError("--burstiness shapes open-loop arrivals: it needs --rate")
    if rates and requests is None and duration is None:
        raise click.UsageError("--rate needs --requests N or --duration S (how many arrivals per level)")
    if sum(x is not None for x in (prompt, prompt_file, input_tokens)) > 1:
        raise click.UsageError("give only one of --prompt, --prompt-file and --input-tokens")
    if shared_prefix_tokens and not input_tokens:
        raise click.UsageError("--shared-prefix-tokens needs --input-tokens")
    if input_tokens and shared_prefix_tokens >= input_tokens:
        raise click.UsageError("--shared-prefix-tokens must be smaller than --input-tokens")
    if csv_requests and ctx.get_parameter_source("fmt") == click.core.ParameterSource.COMMANDLINE and fmt != "csv":
        raise click.UsageError("--csv-requests is a CSV output: use it with --format csv (or alone)")
    if csv_requests:
        fmt = "csv"
    if prompt_file is not None:
        if not Path(prompt_file).is_file():
            raise click.BadParameter(f"{prompt_file}: no such file", param_hint="--prompt-file")
        try:
            load_prompt_file(prompt_file)
        except LlmopsError as exc:
            raise click.BadParameter(str(exc), param_hint="--prompt-file") from None
    slo_spec = parse_slo(slo) if slo is not None else None
    # The same sampling for every server: a field a server does not know is ignored by it (vLLM
    # logs it), so the penalty goes under both names rather than guessing the backend.
    sampling = {k: v for k, v in (("top_p", top_p), ("top_k", top_k), ("min_p", min_p),
                                  ("repeat_penalty", repeat_penalty), ("repetition_penalty", repeat_penalty))
                if v is not None}
    adaptive = repeat.strip().lower() == "auto"
    if not adaptive:
        try:
            repeats = int(repeat)
        except ValueError:
            raise click.BadParameter(f"{repeat!r}: a whole number >= 1 or 'auto'", param_hint="--repeat") from None
        if repeats < 1:
            raise click.BadParameter(f"{repeat!r}: a whole number >= 1 or 'auto'", param_hint="--repeat")
    else:
        repeats = 1
    ssl_context = None
    if insecure:
        ssl_context = ssl.create_default_context()
        ssl_context.check_hostname = False
        ssl_context.verify_mode = ssl.CERT_NONE

    try:
        levels, records, calibration, model_name = asyncio.run(_run(
            root=root, v1=v1, chat_url=chat_url, model=model, api_key=api_key, ssl_context=ssl_context,
            load=LoadSpec(concurrency=levels_c, requests=requests, duration=duration, warmup=warmup, rate=rates,
                          burstiness=burstiness or 1.0, seed=seed or 0),
            prompt=PromptSpec(text=None if (input_tokens or prompt_file) else (prompt or DEFAULT_PROMPT),
                              input_tokens=input_tokens, file=prompt_file, max_tokens=max_tokens, unique=unique,
                              shared_prefix_tokens=shared_prefix_tokens, seed=seed or 0),
            ignore_eos=ignore_eos if ignore_eos is not None else input_tokens is not None,
            temperature=temperature, seed=seed, timeout=timeout, slo=slo_spec, save_requests=save_requests,
            sampling=sampling, repeat={"repeat": repeats, "adaptive": adaptive, "max_repeat": max_repeat, "precision": precision,
                    "metrics_path": "/metrics" if server_metrics else None}))
    except LlmopsError as exc:
        click.echo(f"llmops bench: error: {exc}", err=True)
        ctx.exit(1)

    _print(fmt, csv_requests, levels, records, calibration, model_name, chat_url, max_tokens, input_tokens)
    if levels and all(lv["succeeded"] == 0 for lv in levels):
        click.echo("llmops bench: every request failed (see the errors above)", err=True)
        ctx.exit(1)


async def _run(*, root: str, v1: str, chat_url: str, model: str | None, api_key: str | None,
               ssl_context: ssl.SSLContext | None, load: LoadSpec, prompt: PromptSpec, ignore_eos: bool,
               temperature: float | None, seed: int | None, timeout: float | None, slo: bench_metrics.Slo | None,
               save_requests: str | None, repeat: dict[str, Any] | None = None,
               sampling: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], list[RequestRecord], dict[str, Any], str]:
    model_name = model or await first_model(v1, api_key, ssl_context)
    opts = RequestOptions(url=chat_url, model=model_name, api_key=api_key, ignore_eos=ignore_eos,
                          temperature=temperature, seed=seed, timeout=timeout, ssl_context=ssl_context,
                          sampling=dict(sampling or {}))
    records: list[RequestRecord] = []
    try:
        sink = open(save_requests, "w", encoding="utf-8") if save_requests else None  # noqa: SIM115
    except OSError as exc:
        raise LlmopsError(f"--save-requests {save_requests}: cannot write: {exc.strerror or exc}") from None

    # Progress on stderr only (stdout is the data): a live line on a terminal, heartbeats elsewhere.
    console = Console(stream=sys.stderr)
    progress = LevelProgress(load, lambda text: console.status("bench", text))

    def on_record(record: RequestRecord) -> None:
        records.append(record)
        progress.on_record(record)
        if sink is not None:
            sink.write(json.dumps(finite(record.to_json()), allow_nan=False) + "\n")

    def on_level(level: dict[str, Any]) -> None:
        ttft = level.get("ttft_max_s")
        console.line(f"{level_label(level)}: {level['succeeded']}/{level['requests']} ok, "
                     f"gen {level['gen_tps']:.1f} tok/s, TTFT max {'-' if ttft is None else f'{ttft:.3f}'} s, "
                     f"{level['total_s']:.2f} s" + repeat_note(level))

    bench_run = Bench(base_url=root, opts=opts, load=load, prompt_spec=prompt, slo=slo, on_record=on_record,
                      on_level=progress.on_level, **(repeat or {}))
    try:
        levels = await bench_run.run(on_level)
    finally:
        if sink is not None:
            sink.close()
    return levels, records, bench_run.calibration, model_name


def _print(fmt: str, csv_requests: bool, levels: list[dict[str, Any]], records: list[RequestRecord],
           calibration: dict[str, Any], model: str, chat_url: str, max_tokens: int, input_tokens: int | None) -> None:
    if fmt == "json":
        doc = {"model": model, "url": _public_url(chat_url), "calibration": calibration,
               "levels": [finite(lv) for lv in levels]}
        click.echo(json.dumps(finite(doc), indent=2, allow_nan=False))
        return
    if fmt == "csv":
        if csv_requests:
            click.echo(csv_text([finite(r.to_json()) for r in records], CSV_REQUEST_FIELDS), nl=False)
        else:
            click.echo(csv_text([finite(lv) for lv in levels], CSV_LEVEL_FIELDS), nl=False)
        return
    from llmops.report.tables import bench_table, detail_table

    measured_input = next((lv.get("prompt_tokens_mean") for lv in levels if lv.get("prompt_tokens_mean")), None)
    if input_tokens:
        exact = calibration.get("exact_prompt_tokens")
        input_text = f"{input_tokens} tokens asked" + (" (exact)" if exact else "")
    else:
        input_text = "measured " + (f"{measured_input:.0f} tokens" if measured_input else "-")
    click.echo(f"Model: {model} | URL: {_public_url(chat_url)}")
    click.echo(f"Input: {input_text} | Output: {max_tokens} tokens (max)")
    click.echo("")
    click.echo(bench_table(levels))
    click.echo("")
    click.echo(detail_table(levels))
    goodput = [f"{level_label(lv)}: {lv['goodput_rps']:.2f} req/s ({lv['goodput_requests']}/{lv['requests']} "
               "within every limit)" for lv in levels if lv.get("goodput_rps") is not None]
    if goodput:
        click.echo("\nGoodput:")
        for line in goodput:
            click.echo(f"  {line}")
    errors = error_lines(levels)
    if errors:
        click.echo("\nErrors:")
        for line in errors:
            click.echo(f"  {line}")
    notes = note_lines(levels, calibration)
    if notes:
        click.echo("\nNotes:")
        for line in notes:
            click.echo(f"  {line}")
    sys.stdout.flush()
