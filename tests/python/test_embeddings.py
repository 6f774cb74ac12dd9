"""The official openai Python SDK against POST /v1/embeddings: float and base64, native kinds, errors.

The mock upstream (tests/mock/upstream.mjs) answers deterministic vectors per input text; the
expected ones come from its POST /__mock/embedding route. Wire formats:
/work/notes/embeddings-wire.md. Instances: GATEWAY_URL (server keys), PUBLIC_GATEWAY_URL
(DashScope server key), ROUTER_GATEWAY_URL (route r-embed-503: alpha on MOCK_URL, then zhipu on
MOCK_B_URL at /api/paas/v4), all in tests/run.mjs.
"""
import base64
import json
import os
import struct
import urllib.request
import uuid

import openai
import pytest
from openai import OpenAI

from conftest import ACCESS_TOKEN, GATEWAY, MOCK, PUBLIC_GATEWAY, SERVER_KEY, received, scenario

ROUTER = os.environ.get("ROUTER_GATEWAY_URL")
MOCK_B = os.environ.get("MOCK_B_URL")
GEMINI_KEY = "gm-server-secret-key"
DASHSCOPE_KEY = "ds-server-secret-key"
GEMINI_BATCH_PATH = "/v1beta/models/gemini-embedding-001:batchEmbedContents"
DASHSCOPE_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
TIMEOUT = 30  # seconds, for every SDK call (all on loopback)


@pytest.fixture
def emb_client():
    return OpenAI(base_url=f"{GATEWAY}/v1", api_key=ACCESS_TOKEN, max_retries=0, timeout=TIMEOUT)


@pytest.fixture
def emb_public_client():
    return OpenAI(base_url=f"{PUBLIC_GATEWAY}/v1", api_key="sk-python-emb-user", max_retries=0, timeout=TIMEOUT)


def texts_for(tag, n, word="py"):
    return [f"{word} {i} {'w ' * (i % 3)}{tag}" for i in range(n)]


def expected(texts, dims=None):
    """The mock's vectors and token counts for the texts."""
    body = {"texts": texts}
    if dims:
        body["dims"] = dims
    req = urllib.request.Request(f"{MOCK}/__mock/embedding", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.load(res)


def assert_close(actual, want, what):
    assert len(actual) == len(want), f"{what}: {len(actual)} values, expected {len(want)}"
    for i, (a, b) in enumerate(zip(actual, want)):
        assert isinstance(a, float), f"{what}[{i}] is {type(a)}"
        assert abs(a - b) <= 1e-6, f"{what}[{i}]: {a} vs {b}"


def decode_f32(text):
    raw = base64.b64decode(text)
    assert len(raw) % 4 == 0
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def assert_answer(resp, texts, dims=None, model=None, exact=False):
    want = expected(texts, dims)
    assert resp.object == "list"
    if model is not None:
        assert resp.model == model
    assert [d.index for d in resp.data] == list(range(len(texts)))
    for i, d in enumerate(resp.data):
        assert d.object == "embedding"
        if exact:
            assert d.embedding == want["embeddings"][i], f"data[{i}]"
        else:
            assert_close(d.embedding, want["embeddings"][i], f"data[{i}]")
    return want


def test_openai_kind_float_passthrough(emb_client):
    tag = scenario()
    texts = texts_for(tag, 3, "float")
    resp = emb_client.embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float", dimensions=4, user="py-user"
    )
    want = assert_answer(resp, texts, dims=4, model="text-embedding-3-small", exact=True)
    assert resp.usage.prompt_tokens == sum(want["tokens"])
    assert resp.usage.total_tokens == sum(want["tokens"])
    [upstream] = received(tag)
    assert upstream["path"] == "/v1/embeddings"
    assert upstream["body"] == {
        "model": "text-embedding-3-small", "input": texts, "user": "py-user", "dimensions": 4, "encoding_format": "float",
    }
    assert upstream["headers"]["authorization"] == f"Bearer {SERVER_KEY}"
    assert ACCESS_TOKEN not in json.dumps(upstream["headers"])


def test_openai_kind_sdk_default_is_base64_decoded_by_the_sdk(emb_client):
    tag = scenario()
    texts = texts_for(tag, 2, "default")
    resp = emb_client.embeddings.create(model="text-embedding-3-small", input=texts)
    assert_answer(resp, texts)
    [upstream] = received(tag)
    assert upstream["body"]["encoding_format"] == "base64", "the SDK asks for base64 when not told"
    # Explicit base64: the strings are left alone; they are float32 little-endian.
    resp = emb_client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="base64")
    want = expected(texts)
    for i, d in enumerate(resp.data):
        assert isinstance(d.embedding, str)
        assert_close(decode_f32(d.embedding), want["embeddings"][i], f"data[{i}]")


def test_gemini_float_and_base64_with_task_type(emb_client):
    tag = scenario()
    texts = [f"Python 测试 🐍 {tag}", *texts_for(tag, 2, "gemini")]
    resp = emb_client.embeddings.create(
        model="gemini-embedding-001", input=texts, dimensions=6, encoding_format="float",
        extra_body={"task_type": "CLUSTERING"},
    )
    want = assert_answer(resp, texts, dims=6, model="gemini-embedding-001")
    assert resp.usage.prompt_tokens == sum(want["tokens"])
    [upstream] = received(tag)
    assert upstream["path"] == GEMINI_BATCH_PATH
    assert upstream["headers"]["x-goog-api-key"] == GEMINI_KEY
    assert "authorization" not in upstream["headers"]
    requests = upstream["body"]["requests"]
    assert [r["content"]["parts"] for r in requests] == [[{"text": t}] for t in texts]
    assert all(r["model"] == "models/gemini-embedding-001" for r in requests)
    assert all(r["taskType"] == "CLUSTERING" and r["outputDimensionality"] == 6 for r in requests)

    # base64 asked explicitly: the gateway encodes the native floats as float32 LE.
    resp = emb_client.embeddings.create(model="gemini-embedding-001", input=texts, encoding_format="base64")
    want = expected(texts)
    for i, d in enumerate(resp.data):
        assert isinstance(d.embedding, str), f"data[{i}] is base64"
        assert_close(decode_f32(d.embedding), want["embeddings"][i], f"data[{i}]")
    # The SDK default: base64 on the wire, floats for the caller.
    assert_answer(emb_client.embeddings.create(model="gemini-embedding-001", input=texts[0]), texts[:1])


def test_dashscope_batches_of_ten(emb_public_client):
    tag = scenario()
    texts = texts_for(tag, 15, "ds")
    resp = emb_public_client.embeddings.create(model="text-embedding-v4", input=texts, dimensions=64)
    want = assert_answer(resp, texts, dims=64, model="text-embedding-v4")
    assert resp.usage.prompt_tokens == sum(want["tokens"])
    assert resp.usage.total_tokens == sum(want["tokens"])
    calls = received(tag)
    assert len(calls) == 2, [len(c["body"]["input"]["texts"]) for c in calls]
    for call in calls:
        assert call["path"] == DASHSCOPE_PATH
        assert call["headers"]["authorization"] == f"Bearer {DASHSCOPE_KEY}"
        assert call["body"]["model"] == "text-embedding-v4"
        assert call["body"]["parameters"]["dimension"] == 64
        assert len(call["body"]["input"]["texts"]) <= 10
    sent = sorted((c["body"]["input"]["texts"] for c in calls), key=lambda t: texts.index(t[0]))
    assert [t for batch in sent for t in batch] == texts


def test_errors_map_to_sdk_exceptions(emb_client):
    tag = scenario()
    with pytest.raises(openai.BadRequestError) as err:
        emb_client.embeddings.create(model="text-embedding-3-small", input=[], user=tag)
    assert err.value.status_code == 400
    assert received(tag) == [], "no upstream request for a bad request"
    with pytest.raises(openai.InternalServerError) as err:
        emb_client.embeddings.create(model="gemini-embedding-001", input=[f"x {scenario(status=500)}"])
    assert err.value.status_code == 500
    with pytest.raises(openai.RateLimitError):
        emb_client.embeddings.create(model="text-embedding-3-small", input=f"x {scenario(status=429)}")


def scenario_on(knobs_by_mock):
    """Registers one tag on several mocks, each with its own knobs; returns the tag."""
    sid = "s" + uuid.uuid4().hex
    for mock, knobs in knobs_by_mock.items():
        req = urllib.request.Request(
            f"{mock}/__mock/scenario", data=json.dumps({"id": sid, **knobs}).encode(), method="POST"
        )
        urllib.request.urlopen(req, timeout=10).read()
    return f"mock:{sid}"


def received_on(mock, tag):
    with urllib.request.urlopen(f"{mock}/__mock/requests?tag={tag.split(':', 1)[1]}", timeout=10) as res:
        return sorted(json.load(res), key=lambda r: r["seq"])


def test_router_fallback_raw_response():
    if not (ROUTER and MOCK_B):
        pytest.skip("needs ROUTER_GATEWAY_URL and MOCK_B_URL (tests/run.mjs)")
    client = OpenAI(base_url=f"{ROUTER}/v1", api_key="router-access-token", max_retries=0, timeout=TIMEOUT)
    tag = scenario_on({MOCK: {"status": 503}, MOCK_B: {}})
    texts = texts_for(tag, 2, "router")
    raw = client.embeddings.with_raw_response.create(model="r-embed-503", input=texts)
    assert raw.headers.get("x-gateway-upstream") == "zhipu"
    assert raw.headers.get("x-gateway-attempts") == "2"
    assert_answer(raw.parse(), texts)
    first = received_on(MOCK, tag)
    second = received_on(MOCK_B, tag)
    assert [(r["key"], r["body"]["model"]) for r in first] == [("sk-alpha-key-1", "alpha-embed-503")]
    assert [(r["path"], r["key"], r["body"]["model"]) for r in second] == [
        ("/api/paas/v4/embeddings", "zk-zhipu-key-1", "glm-embed")
    ]
    assert "router-access-token" not in json.dumps(second[0]["headers"])
