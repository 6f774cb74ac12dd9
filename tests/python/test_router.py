"""The official openai Python SDK (max_retries=0) against the router instance: a fallback route.

ROUTER_GATEWAY_URL's settings are in tests/run.mjs: the route `r-python` falls back from
`alpha` (on the main mock, MOCK_URL) to `zhipu` (on MOCK_B_URL, at /api/paas/v4).
"""
import json
import os
import urllib.request
import uuid

import pytest
from openai import OpenAI

from conftest import MOCK

ROUTER = os.environ.get("ROUTER_GATEWAY_URL")
MOCK_B = os.environ.get("MOCK_B_URL")
ALPHA_KEY = "sk-alpha-key-1"
ZHIPU_KEY = "zk-zhipu-key-1"


def scenario_on(knobs_by_mock):
    """Registers one tag on several mocks, each with its own knobs; returns the tag."""
    sid = "s" + uuid.uuid4().hex
    for mock, knobs in knobs_by_mock.items():
        req = urllib.request.Request(
            f"{mock}/__mock/scenario", data=json.dumps({"id": sid, **knobs}).encode(), method="POST"
        )
        urllib.request.urlopen(req).read()
    return f"mock:{sid}"


def received_on(mock, tag):
    with urllib.request.urlopen(f"{mock}/__mock/requests?tag={tag.split(':', 1)[1]}") as res:
        return sorted(json.load(res), key=lambda r: r["seq"])


@pytest.fixture
def router_client():
    if not (ROUTER and MOCK_B):
        pytest.skip("needs ROUTER_GATEWAY_URL and MOCK_B_URL (tests/run.mjs)")
    return OpenAI(base_url=f"{ROUTER}/v1", api_key="router-access-token", max_retries=0)


def test_fallback_route_raw_response(router_client):
    tag = scenario_on({MOCK: {"status": 503}, MOCK_B: {"content": "Python fallback 🐍 answer"}})
    raw = router_client.chat.completions.with_raw_response.create(
        model="r-python", messages=[{"role": "user", "content": f"hello {tag}"}]
    )
    assert raw.headers.get("x-gateway-attempts") == "2"
    assert raw.headers.get("x-gateway-upstream") == "zhipu"
    completion = raw.parse()
    assert completion.choices[0].message.content == "Python fallback 🐍 answer"
    first = received_on(MOCK, tag)
    second = received_on(MOCK_B, tag)
    assert [(r["key"], r["body"]["model"]) for r in first] == [(ALPHA_KEY, "alpha-py")]
    assert [(r["path"], r["key"], r["body"]["model"]) for r in second] == [
        ("/api/paas/v4/chat/completions", ZHIPU_KEY, "glm-py")
    ]
    assert second[0]["headers"]["x-stainless-lang"] == "python"
    assert "router-access-token" not in json.dumps(second[0]["headers"])


def test_fallback_route_stream(router_client):
    tag = scenario_on({MOCK: {"status": 503}, MOCK_B: {"content": "streamed after a fallback", "chunk_chars": 4}})
    stream = router_client.chat.completions.create(
        model="r-python", stream=True, messages=[{"role": "user", "content": f"hello {tag}"}]
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "streamed after a fallback"
    assert len(received_on(MOCK, tag)) == 1
    assert len(received_on(MOCK_B, tag)) == 1
