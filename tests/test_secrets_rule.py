"""The one masking rule (llmops/secrets.py, docs/secrets.md) on names and values."""

from __future__ import annotations

import json

import pytest

from llmops import secrets


@pytest.mark.parametrize("name", ["HF_TOKEN", "hf_token", "MY_SIGNING_KEY", "DB_PASS", "ansible_password",
                                  "Authorization", "aws_credentials", "api_key", "x-api-key", "PWD_FILE",
                                  "ansible_become_pass", "client_secret", "GITHUB_TOKEN"])
def test_secret_names(name: str) -> None:
    assert secrets.is_secret_name(name)


@pytest.mark.parametrize("name", ["max_tokens", "input_tokens", "shared_prefix_tokens", "completion_tokens",
                                  "port", "model", "concurrency", "ctx_size"])
def test_counts_and_plain_names_are_not_secret(name: str) -> None:
    # `-e max_tokens=1500` was once masked inside results.json, which corrupted the file
    assert not secrets.is_secret_name(name)


def test_short_numbers_are_not_scrubbed_from_text() -> None:
    secrets.register(["4242", "hunter2-long-value"])
    text = json.dumps({"completion_tokens": 4242, "note": "pw hunter2-long-value"})
    scrubbed = secrets.scrub(text)
    assert json.loads(scrubbed) == {"completion_tokens": 4242, "note": "pw ***"}
    assert secrets.scrub("id 123456789", extra=["123456789"]) == "id ***"  # a long digit secret still goes


def test_a_template_expression_is_not_itself_a_secret() -> None:
    secrets.register(["{{ api_key | default(none) }}"])
    assert secrets.scrub('api_key: "{{ api_key | default(none) }}"') == 'api_key: "{{ api_key | default(none) }}"'
