"""Agreement between greedy completions of two variants, token by token. Pure; docs/metrics.md
("Quality") defines every figure here.

A completion is a list of tokens (strings as the server names them; both servers of a model pair
share a tokenizer). Positions count from 0. Log-probabilities are natural logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import fmean


def first_divergence(ref: list[str], other: list[str], n: int) -> int:
    """The first position < n where the two differ; n when their first n tokens are the same.

    A sequence that ends early (stop token, EOS) differs from one that goes on at the position
    where it ended; two that end at the same place are identical."""
    limit = min(n, max(len(ref), len(other)))
    for i in range(limit):
        if i >= len(ref) or i >= len(other) or ref[i] != other[i]:
            return i
    return n


@dataclass(frozen=True)
class TokenScores:
    """What a server said about one generated completion: its tokens, the log-probability of each,
    and the top alternatives at each position ({token: logprob}, may be empty)."""

    tokens: list[str]
    logprobs: list[float | None] = field(default_factory=list)
    top: list[dict[str, float]] = field(default_factory=list)


# One answer as the run directory keeps it (completions.jsonl). Here, beside TokenScores, so that
# reading a run (report, summary) never imports the HTTP client that asked for it.
@dataclass
class Completion:
    prompt: str
    text: str
    scores: TokenScores
    finish_reason: str | None = None

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "text": self.text, "tokens": self.scores.tokens,
                "logprobs": self.scores.logprobs, "top_logprobs": self.scores.top,
                "finish_reason": self.finish_reason}

    @staticmethod
    def from_dict(d: dict) -> Completion:
        return Completion(d["prompt"], d["text"], TokenScores(list(d["tokens"]), list(d.get("logprobs") or []),
                                                              list(d.get("top_logprobs") or [])),
                          d.get("finish_reason"))



def reference_logprob_at(variant: TokenScores, position: int, token: str) -> float | None:
    """Log-probability the variant gave `token` at `position`: its own pick's, or from its top list.

    None when the variant did not report it (not generated there and outside its top-k)."""
    if position < len(variant.tokens) and variant.tokens[position] == token:
        if position < len(variant.logprobs) and variant.logprobs[position] is not None:
            return variant.logprobs[position]
    if position < len(variant.top):
        return variant.top[position].get(token)
    return None


@dataclass(frozen=True)
class PairScores:
    """One prompt, reference vs variant."""

    identical_prefix: bool  # the first n tokens are identical
    divergence: int  # first differing position (n if none)
    aligned: int  # positions where both saw the same context: up to and including the divergence
    ref_logprob: float | None  # mean over aligned positions of log p_variant(reference token)
    ref_logprob_self: float | None  # the same under the reference itself, same positions (the baseline)
    top1: float | None  # share of aligned positions whose variant top-1 is the reference token
    missing_logprobs: int  # aligned positions where the variant did not report the reference token


def score_pair(ref: TokenScores, other: TokenScores, n: int) -> PairScores:
    """Compare two greedy completions of the same prompt.

    After the first divergence the two continue from different texts, so token-level figures use
    only the positions where both had the same context: 0 .. divergence (the divergence position
    included: there both saw the same prefix and picked differently)."""
    div = first_divergence(ref.tokens, other.tokens, n)
    aligned = min(div + 1, n, len(ref.tokens))
    lps: list[float] = []
    own: list[float] = []
    top1_hits = 0
    missing = 0
    for i in range(aligned):
        token = ref.tokens[i]
        if i < len(other.tokens) and other.tokens[i] == token:
            top1_hits += 1
        lp = reference_logprob_at(other, i, token)
        if lp is None:
            missing += 1
            continue
        lps.append(lp)
        # The baseline over the same positions, so a missing token cannot bias the gap.
        if i < len(ref.logprobs) and ref.logprobs[i] is not None:
            own.append(ref.logprobs[i])
    has_lp = bool(other.logprobs) or bool(other.top)
    return PairScores(
        identical_prefix=div >= n, divergence=div, aligned=aligned,
        ref_logprob=fmean(lps) if lps else None,
        ref_logprob_self=fmean(own) if own else None,
        top1=(top1_hits / aligned) if aligned and has_lp else None,
        missing_logprobs=missing if has_lp else 0)


@dataclass(frozen=True)
class Agreement:
    """A variant against the reference over a prompt set."""

    prompts: int
    n: int
    identical_share: float  # share of prompts whose first n tokens are identical
    mean_divergence: float  # mean first-divergence position (n for identical prompts)
    ref_logprob: float | None  # mean over prompts of PairScores.ref_logprob
    ref_logprob_self: float | None
    logprob_gap: float | None  # ref_logprob_self - ref_logprob (0: same distribution on these tokens)
    top1: float | None  # aligned positions pooled over prompts
    missing_logprobs: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def agreement(refs: list[TokenScores], others: list[TokenScores], n: int) -> Agreement:
    if len(refs) != len(others) or not refs:
        raise ValueError("agreement needs the same, non-empty prompt set on both sides")
    pairs = [score_pair(r, o, n) for r, o in zip(refs, others, strict=False)]
    lp = [p.ref_logprob for p in pairs if p.ref_logprob is not None]
    own = [p.ref_logprob_self for p in pairs if p.ref_logprob_self is not None]
    # Pool top-1 over positions (a prompt with 30 aligned tokens weighs more than one with 1).
    with_top = [p for p in pairs if p.top1 is not None]
    top_positions = sum(p.aligned for p in with_top)
    top1 = (sum(p.top1 * p.aligned for p in with_top) / top_positions) if top_positions else None
    mean_lp = fmean(lp) if lp else None
    mean_own = fmean(own) if own else None
    return Agreement(
        prompts=len(pairs), n=n,
        identical_share=sum(p.identical_prefix for p in pairs) / len(pairs),
        mean_divergence=fmean(p.divergence for p in pairs),
        ref_logprob=mean_lp, ref_logprob_self=mean_own,
        logprob_gap=(mean_own - mean_lp) if mean_lp is not None and mean_own is not None else None,
        top1=top1, missing_logprobs=sum(p.missing_logprobs for p in pairs))
