"""Quality scoring on hand-computed examples (docs/metrics.md, "Quality"), and the task scorer on
known answers. Pure: no server."""

from __future__ import annotations

import math

import pytest

from llmops.quality.agreement import Completion, TokenScores, agreement, first_divergence, score_pair
from llmops.quality.runner import parse_logprobs, quantisation_of
from llmops.quality.summary import VariantRun, compare, differing_settings
from llmops.quality.tasks import Task, is_correct, make_tasks, normalise, score


def test_first_divergence() -> None:
    assert first_divergence(list("abcd"), list("abcd"), 4) == 4
    assert first_divergence(list("abcd"), list("abxd"), 4) == 2
    assert first_divergence(list("abcd"), list("abxd"), 2) == 2  # identical within the first 2
    assert first_divergence(list("ab"), list("abc"), 4) == 2  # one stopped early
    assert first_divergence(list("ab"), list("ab"), 4) == 4  # both stopped at the same place


def test_pair_hand_computed() -> None:
    ref = TokenScores(["a", "b", "c", "d"], [-1.0, -2.0, -3.0, -4.0])
    # Same first two tokens, then picks "x" where the reference picked "c"; the reference's "c"
    # is in its top list at -2.5.
    other = TokenScores(["a", "b", "x", "y"], [-1.5, -2.5, -2.0, -1.0],
                        [{"a": -1.5}, {"b": -2.5}, {"x": -2.0, "c": -2.5}, {"y": -1.0}])
    p = score_pair(ref, other, 4)
    assert (p.identical_prefix, p.divergence, p.aligned) == (False, 2, 3)
    assert p.ref_logprob == pytest.approx((-1.5 - 2.5 - 2.5) / 3)
    assert p.ref_logprob_self == pytest.approx((-1 - 2 - 3) / 3)
    assert p.top1 == pytest.approx(2 / 3)
    assert p.missing_logprobs == 0


def test_reference_token_outside_top_k_is_counted_missing() -> None:
    ref = TokenScores(["a", "c"], [-1.0, -1.0])
    other = TokenScores(["a", "x"], [-1.0, -0.5], [{"a": -1.0}, {"x": -0.5}])
    p = score_pair(ref, other, 2)
    assert p.missing_logprobs == 1 and p.ref_logprob == -1.0 and p.top1 == 0.5


def test_agreement_over_prompts_hand_computed() -> None:
    refs = [TokenScores(list("abcd"), [-1.0] * 4), TokenScores(list("wxyz"), [-1.0] * 4)]
    same = [TokenScores(list("abcd"), [-1.0] * 4), TokenScores(list("wxyz"), [-1.0] * 4)]
    a = agreement(refs, same, 4)
    assert (a.identical_share, a.mean_divergence, a.top1, a.logprob_gap) == (1.0, 4.0, 1.0, 0.0)
    other = [TokenScores(list("abcd"), [-2.0] * 4), TokenScores(list("wqyz"), [-1.0, -1.0, -1.0, -1.0])]
    b = agreement(refs, other, 4)
    assert b.identical_share == 0.5
    assert b.mean_divergence == (4 + 1) / 2
    # Pooled top-1: prompt 1 has 4 aligned positions, all agree; prompt 2 has 2 (w, then q != x).
    assert b.top1 == pytest.approx((4 + 1) / (4 + 2))
    # Prompt 2's "x" is not in the variant's report: only "w" (-1.0) counts there.
    assert b.ref_logprob == pytest.approx((-2.0 + -1.0) / 2)
    assert b.logprob_gap == pytest.approx(-1.0 - (-1.5))
    assert b.missing_logprobs == 1


def test_without_logprobs_token_figures_are_absent() -> None:
    p = score_pair(TokenScores(list("ab")), TokenScores(list("ab")), 2)
    assert p.identical_prefix and p.top1 is None and p.ref_logprob is None


def test_parse_both_logprob_shapes() -> None:
    vllm = {"logprobs": {"tokens": [" a", " b"], "token_logprobs": [-0.5, -1.5],
                         "top_logprobs": [{" a": -0.5, " c": -2.0}, {" b": -1.5}]}}
    s = parse_logprobs(vllm)
    assert s.tokens == [" a", " b"] and s.logprobs == [-0.5, -1.5] and s.top[0][" c"] == -2.0
    # Asked for ids, vLLM names tokens "token_id:N"; llama-server gives "id": both become "id:N".
    ids = parse_logprobs({"logprobs": {"tokens": ["token_id:7"], "token_logprobs": [-0.5],
                                       "top_logprobs": [{"token_id:7": -0.5, "token_id:9": -1.0}]}})
    assert ids.tokens == ["id:7"] and ids.top == [{"id:7": -0.5, "id:9": -1.0}]
    llama = {"logprobs": {"content": [{"id": 1, "token": " a", "logprob": -0.5,
                                       "top_logprobs": [{"id": 1, "token": " a", "logprob": -0.5},
                                                        {"id": 2, "token": " c", "logprob": -2.0}]}]}}
    s = parse_logprobs(llama)
    assert s.tokens == ["id:1"] and s.logprobs == [-0.5] and s.top == [{"id:1": -0.5, "id:2": -2.0}]
    assert parse_logprobs({"logprobs": None}) is None


def test_quantisation_from_file_name() -> None:
    assert quantisation_of("/m/tiny-Q4_0.gguf") == "Q4_0"
    assert quantisation_of("/m/llama-3-8b.Q8_0.gguf") == "Q8_0"
    assert quantisation_of("/m/tiny-f16.gguf") == "F16"
    assert quantisation_of("/m/tiny.gguf") is None


@pytest.mark.parametrize("task,completion,ok", [
    (Task("arithmetic", "", "42"), " 42\nmore", True),
    (Task("arithmetic", "", "42"), "42.", True),
    (Task("arithmetic", "", "42"), "The answer is 42", False),
    (Task("arithmetic", "", "-7"), "\n\n -7 ", True),
    (Task("copy", "", "apple river"), "apple   river", True),
    (Task("copy", "", "apple river"), "Apple river", False),
    (Task("sort", "", "1, 2, 3"), "1, 2, 3", True),
    (Task("sort", "", "1, 2, 3"), "1,2,3", False),
    (Task("lookup", "", "512"), "", False),
])
def test_task_scorer_known_answers(task: Task, completion: str, ok: bool) -> None:
    assert is_correct(task, completion) is ok


def test_generated_tasks_have_right_answers() -> None:
    tasks = make_tasks(40, seed=3)
    assert tasks == make_tasks(40, seed=3)  # every variant and run gets the same tasks
    assert {t.kind for t in tasks} == {"arithmetic", "copy", "sort", "lookup"}
    for t in tasks:
        if t.kind == "arithmetic":
            expr = t.prompt.split("Compute ", 1)[1].split(".", 1)[0]
            a, op, b = expr.split()
            assert int(t.answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        elif t.kind == "copy":
            assert t.prompt.startswith(f"Repeat exactly: {t.answer}\n")
        elif t.kind == "sort":
            shown = [int(x) for x in t.prompt.split(": ", 1)[1].split("\n")[0].split(", ")]
            assert [int(x) for x in t.answer.split(", ")] == sorted(shown)
        else:
            table = t.prompt.split("Given ", 1)[1].split(". What", 1)[0]
            key = t.prompt.split("What is ", 1)[1].split("?", 1)[0]
            assert dict(kv.split("=") for kv in table.split("; "))[key] == t.answer
    perfect = score(tasks, [t.answer for t in tasks])
    assert perfect["accuracy"] == 1.0 and perfect["correct"] == 40
    assert score(tasks, [""] * 40)["accuracy"] == 0.0
    assert normalise("  a  b.\nc") == "a b"


def _run(tokens: list[list[str]]) -> list[Completion]:
    return [Completion("p", "".join(t), TokenScores(t, [-1.0] * len(t))) for t in tokens]


def test_summary_names_the_variant_beyond_noise() -> None:
    base = [list("abcd"), list("efgh"), list("ijkl"), list("mnop")]
    moved = [list("abxd"), list("exgh"), list("ijkl"), list("xnop")]
    variants = [VariantRun("llama", {"backend": "llama.cpp", "quantisation": "as stored"}, [_run(base), _run(base)], []),
                VariantRun("q4", {"backend": "llama.cpp", "quantisation": "Q4_0"}, [_run(moved), _run(moved)], [])]
    result = compare(variants, [], 4)
    assert result["reference"] == "llama"
    assert result["variants"]["q4"]["agreement"]["identical_share"] == 0.25
    assert result["noise"]["disagreement"] == 0.0
    assert result["differs_beyond_noise"] == ["q4"]
    assert result["settings_differ"] == {"quantisation": {"llama": "as stored", "q4": "Q4_0"}}
    # Against a noisy self-repetition the same move is within the noise.
    noisy = [VariantRun("llama", {}, [_run(base), _run(moved)], []), VariantRun("q4", {}, [_run(moved)], [])]
    assert compare(noisy, [], 4)["differs_beyond_noise"] == []
    assert differing_settings(noisy) == {}
    # Exactly one prompt beyond a noise of zero is still within the margin (no float rounding).
    three = [VariantRun("a", {}, [_run(base[:3]), _run(base[:3])], []),
             VariantRun("b", {}, [_run(moved[1:]), _run(moved[1:])], [])]
    three[1].runs = [_run([base[0], base[1], list("xxxx")])] * 2
    assert compare(three, [], 4)["differs_beyond_noise"] == []
    with pytest.raises(ValueError):
        compare(variants, [], 4, reference="nope")
    assert not math.isnan(result["variants"]["q4"]["agreement"]["mean_divergence"])
