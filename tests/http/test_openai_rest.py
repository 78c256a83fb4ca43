"""ragd's HTTP API as users call it: the official `openai` client, REST with httpx, /metrics.

Runs against a live `ragd serve` (scripts/http-clients starts one) described by:
  RAGD_HTTP_URL    https://127.0.0.1:PORT
  RAGD_TOKEN       bearer token
  RAGD_CA          PEM of the server's (self-signed) certificate, to verify it
  RAGD_KB          absolute path of examples/kb, an --allow-root of the server
  RAGD_COLLECTION  collection the tests ingest examples/kb into (a job) and query
  RAGD_RERANK_EXPECTED  1: the server has a reranker (/v1/rerank answers); else 501 is expected
The server is started with --max-message-bytes 1048576 (the oversized-body test sends ~2 MB).
"""

import base64
import json
import math
import os
import re
import ssl
import struct
import time
import uuid

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.openmetrics.parser import text_string_to_metric_families

URL = os.environ.get("RAGD_HTTP_URL", "").rstrip("/")
TOKEN = os.environ.get("RAGD_TOKEN", "")
CA = os.environ.get("RAGD_CA", "")
KB = os.environ.get("RAGD_KB", "")
COLLECTION = os.environ.get("RAGD_COLLECTION", "demo")
MODEL = f"ragd/{COLLECTION}"
RERANK_EXPECTED = os.environ.get("RAGD_RERANK_EXPECTED", "0") == "1"
# Generous: a debug build on a small CI machine generates slowly.
TIMEOUT = httpx.Timeout(600.0, connect=30.0)

pytestmark = pytest.mark.skipif(not URL, reason="RAGD_HTTP_URL is not set (run scripts/http-clients)")

SEAL_QUESTION = "Which shaft seal fits an XJ-9000 pump built in 2021?"
TERMINAL = {"succeeded", "failed", "cancelled"}
STAGES_SEARCH = ["embed", "bm25", "dense", "fusion"]
STAGES_ASK = ["prompt", "first_token", "decode"]


# ---------------------------------------------------------------------------------------------
# helpers


def kb_files():
    return sorted(f for f in os.listdir(KB) if not f.startswith("."))


def fresh_name(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def tls():
    """Trusts the server's self-signed certificate (RAGD_CA)."""
    return ssl.create_default_context(cafile=CA)


def new_client(token=TOKEN, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.Client(base_url=URL, verify=tls(), headers=headers, timeout=TIMEOUT, **kw)


def assert_error(resp, status, code=None):
    """A non-2xx answer: the status, and the error JSON every route must carry."""
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: " \
        f"expected {status}, got {resp.status_code}: {resp.text[:500]}"
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"error body is not JSON ({resp.headers.get('content-type')}): {resp.text[:500]}")
    err = body.get("error")
    assert isinstance(err, dict), body
    assert isinstance(err.get("message"), str) and err["message"], body
    assert isinstance(err.get("code"), str) and err["code"], body
    if "type" in err:
        assert err["type"] == err["code"].lower(), body
    if code is not None:
        assert err["code"] == code, body
    return err


def sse_events(resp):
    """Parses a text/event-stream answer into (event, data) pairs; event None when unnamed."""
    event, data = None, []
    for line in resp.iter_lines():
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def metrics_text(client):
    r = client.get("/metrics")
    assert r.status_code == 200, r.text[:500]
    return r


def parse_metrics(text):
    """(families by name, [(sample name, labels, value)]) of an OpenMetrics exposition."""
    families = {}
    samples = []
    for fam in text_string_to_metric_families(text):
        families[fam.name] = fam
        for s in fam.samples:
            samples.append((s.name, dict(s.labels), s.value))
    return families, samples


def sample_sum(samples, name, **labels):
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == want for k, want in labels.items()))


def has_family(families, name):
    """An OpenMetrics family is named without _total (counters) / _info (info)."""
    return any(n in families for n in
               (name, name.removesuffix("_total"), name.removesuffix("_info")))


def queue_depth(client):
    _, samples = parse_metrics(metrics_text(client).text)
    vals = [v for n, _, v in samples if n == "ragd_generation_queue_depth"]
    assert vals, "ragd_generation_queue_depth missing"
    return sum(vals)


def check_citations(citations, text):
    """Citations have the contract's fields; [n] markers in text name cited sources."""
    assert isinstance(citations, list), citations
    numbers = set()
    for c in citations:
        for key in ("number", "doc_id", "chunk_id", "title", "span_start", "span_end", "text"):
            assert key in c, (key, c)
        assert c["span_start"] <= c["span_end"], c
        assert c["text"], c
        numbers.add(c["number"])
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", text)}
    assert markers <= numbers, f"markers {sorted(markers)} not all among citations " \
        f"{sorted(numbers)} in {text!r}"
    return numbers


def wait_job(client, job_id, timeout=900):
    """Follows /events until a terminal record (the stream must then end); returns the records."""
    records = []
    deadline = time.time() + timeout
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream"), r.headers
        for event, data in sse_events(r):
            assert event == "job", (event, data)
            rec = json.loads(data)
            assert rec["id"] == job_id, rec
            records.append(rec)
            assert time.time() < deadline, f"job not finished after {timeout} s: {rec}"
    assert records, "no job event"
    assert records[-1]["state"] in TERMINAL, f"events ended before a terminal state: {records[-1]}"
    assert not any(rec["state"] in TERMINAL for rec in records[:-1]), records
    return records


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def http():
    with new_client() as c:
        yield c


@pytest.fixture(scope="module")
def kb(http):
    """RAGD_COLLECTION holds examples/kb (ingested by a job when it is not there yet)."""
    r = http.get(f"/api/v1/collections/{COLLECTION}")
    if r.status_code == 404 or r.json().get("documents", 0) < len(kb_files()):
        r = http.post("/api/v1/jobs", json={"collection": COLLECTION, "paths": [KB]})
        assert r.status_code == 201, r.text
        records = wait_job(http, r.json()["id"])
        assert records[-1]["state"] == "succeeded", records[-1]
        r = http.get(f"/api/v1/collections/{COLLECTION}")
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["documents"] >= len(kb_files()), info
    return info


@pytest.fixture(scope="module")
def oai():
    hc = httpx.Client(verify=tls(), timeout=TIMEOUT)
    client = OpenAI(base_url=URL + "/v1", api_key=TOKEN, http_client=hc, max_retries=0,
                    timeout=600.0)
    yield client
    hc.close()


def extra(obj, key):
    """A non-OpenAI field of a response object (pydantic keeps extras in model_extra)."""
    ex = getattr(obj, "model_extra", None) or {}
    if key in ex:
        return ex[key]
    return getattr(obj, key)


# ---------------------------------------------------------------------------------------------
# OpenAI-compatible API through the official client


def test_models_list_and_retrieve(oai, kb):
    ids = [m.id for m in oai.models.list()]
    assert MODEL in ids, ids
    for m in oai.models.list().data:
        assert m.object == "model" and m.owned_by == "ragd", m
    one = oai.models.retrieve(MODEL)
    assert one.id == MODEL and one.object == "model" and one.owned_by == "ragd", one
    with pytest.raises(openai.NotFoundError) as e:
        oai.models.retrieve("ragd/nope-" + uuid.uuid4().hex[:6])
    assert_error(e.value.response, 404, "NOT_FOUND")


def test_chat_completion(oai, kb):
    done = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": SEAL_QUESTION}], temperature=0, seed=7)
    assert done.object == "chat.completion", done
    assert done.id and done.created > 0, done
    assert done.model in (MODEL, COLLECTION), done.model
    assert len(done.choices) == 1
    choice = done.choices[0]
    assert choice.index == 0
    assert choice.finish_reason in ("stop", "length"), choice
    msg = choice.message
    assert msg.role == "assistant"
    assert msg.content and msg.content.strip(), msg
    citations = extra(msg, "citations")
    not_found = extra(msg, "not_found")
    assert isinstance(not_found, bool), msg
    assert "short_answer" in (msg.model_extra or {}), msg
    check_citations(citations, msg.content)
    assert not not_found, f"the seal question should be answered: {msg}"
    assert citations, msg
    assert any(c["doc_id"].endswith("parts-catalog.md") for c in citations), citations
    u = done.usage
    assert u.prompt_tokens > 0 and u.completion_tokens > 0, u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u


def test_chat_completion_stream(oai, kb):
    args = dict(model=MODEL, messages=[{"role": "user", "content": "What does the KV cache store?"}],
                temperature=0, seed=3, max_tokens=120)
    chunks = list(oai.chat.completions.create(stream=True, **args))
    assert len(chunks) >= 2, chunks
    first = chunks[0]
    assert first.object == "chat.completion.chunk"
    assert first.choices[0].delta.role == "assistant", first
    assert (first.choices[0].delta.content or "") == "", first
    ids = {c.id for c in chunks}
    assert len(ids) == 1, ids
    for c in chunks[:-1]:
        assert c.choices[0].finish_reason is None, c
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason in ("stop", "length"), last
    delta = last.choices[0].delta
    citations = extra(delta, "citations")
    assert isinstance(extra(delta, "not_found"), bool), last
    assert "short_answer" in (delta.model_extra or {}), last
    check_citations(citations, text)
    assert last.usage is not None, last
    assert last.usage.completion_tokens > 0 and last.usage.prompt_tokens > 0, last.usage
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert text.strip(), chunks
    # Greedy decoding: the same request without streaming says the same.
    done = oai.chat.completions.create(**args)
    assert done.choices[0].message.content == text
    assert extra(done.choices[0].message, "citations") == citations


def test_chat_stream_wire_format(kb):
    """The raw SSE: data lines of chunks, then `data: [DONE]`, then the stream ends."""
    body = {"model": MODEL, "stream": True, "max_tokens": 40,
            "messages": [{"role": "user", "content": "What is NF4?"}]}
    with new_client() as c, c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream"), r.headers
        datas = [data for _, data in sse_events(r)]
    assert datas and datas[-1] == "[DONE]", datas[-3:]
    assert "[DONE]" not in datas[:-1]
    parsed = [json.loads(d) for d in datas[:-1]]
    assert all(p["object"] == "chat.completion.chunk" for p in parsed), parsed
    assert parsed[-1]["choices"][0]["finish_reason"] in ("stop", "length"), parsed[-1]
    assert parsed[-1]["usage"]["completion_tokens"] <= 40, parsed[-1]


def test_chat_follow_up(oai, kb):
    first_q = "What is the XJ-9000-B part?"
    first = oai.chat.completions.create(
        model=MODEL, temperature=0, messages=[{"role": "user", "content": first_q}])
    answer = first.choices[0].message.content
    assert answer and answer.strip()
    follow = oai.chat.completions.create(model=MODEL, temperature=0, messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": first_q},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "When should it be replaced?"},
    ])
    msg = follow.choices[0].message
    assert msg.content and msg.content.strip(), msg
    citations = extra(msg, "citations")
    check_citations(citations, msg.content)
    # The previous user turn joins the retrieval query: the parts catalogue is found.
    assert not extra(msg, "not_found"), msg
    assert any(c["doc_id"].endswith("parts-catalog.md") for c in citations), citations


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_chat_max_tokens(oai, kb, field):
    done = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Explain the KV cache in detail."}],
        **{field: 5})
    assert done.usage.completion_tokens <= 5, done.usage
    assert done.choices[0].finish_reason in ("stop", "length"), done


def test_chat_bare_collection_name_and_unknown_fields(kb):
    with new_client() as c:
        r = c.post("/v1/chat/completions", json={
            "model": COLLECTION, "max_tokens": 16, "frequency_penalty": 0, "logprobs": False,
            "some_future_field": {"x": 1}, "messages": [{"role": "user", "content": "What is NF4?"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["role"] == "assistant"


def decode_b64(s):
    raw = base64.b64decode(s)
    assert len(raw) % 4 == 0
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_embeddings(oai, kb):
    dim = kb["dimension"]
    model = kb["embedding_model"]
    texts = ["What does the KV cache store?", "XJ-9000-B shaft seal"]
    floats = oai.embeddings.create(input=texts[0], model=model, encoding_format="float")
    assert floats.object == "list" and len(floats.data) == 1
    assert floats.data[0].index == 0 and floats.data[0].object == "embedding"
    vec = floats.data[0].embedding
    assert len(vec) == dim and all(isinstance(x, float) for x in vec)
    assert floats.usage.prompt_tokens > 0 and floats.usage.total_tokens >= floats.usage.prompt_tokens
    b64 = oai.embeddings.create(input=texts[0], model=model, encoding_format="base64")
    raw = b64.data[0].embedding
    assert isinstance(raw, str), type(raw)
    dec = decode_b64(raw)
    assert len(dec) == dim
    assert max(abs(a - b) for a, b in zip(vec, dec)) < 1e-5
    # The client's default: it asks for base64 and decodes it itself.
    default = oai.embeddings.create(input=texts[0], model=model)
    assert len(default.data[0].embedding) == dim
    assert max(abs(a - b) for a, b in zip(vec, default.data[0].embedding)) < 1e-5
    # A list input: one vector per string, in order.
    many = oai.embeddings.create(input=texts, model=model, encoding_format="float")
    assert [d.index for d in many.data] == [0, 1]
    assert all(len(d.embedding) == dim for d in many.data)
    assert cosine(many.data[0].embedding, vec) > 0.99
    assert cosine(many.data[1].embedding, vec) < 0.99
    many64 = oai.embeddings.create(input=texts, model=model, encoding_format="base64")
    for f, b in zip(many.data, many64.data):
        assert max(abs(x - y) for x, y in zip(f.embedding, decode_b64(b.embedding))) < 1e-5


def test_embeddings_without_model(http, kb):
    r = http.post("/v1/embeddings", json={"input": "hello"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"], body
    assert len(body["data"][0]["embedding"]) == kb["dimension"]


def test_rerank(http):
    docs = ["The KV cache stores attention keys and values.",
            "The XJ-9000-B mechanical shaft seal fits XJ-9000 pumps built after 2019.",
            {"text": "NF4 is a 4-bit data type."},
            "Chunking splits documents into passages."]
    body = {"query": "Which shaft seal fits an XJ-9000 pump?", "documents": docs, "top_n": 2}
    r = http.post("/v1/rerank", json=body)
    if not RERANK_EXPECTED:
        assert_error(r, 501, "UNIMPLEMENTED")
        return
    assert r.status_code == 200, r.text
    out = r.json()
    res = out["results"]
    assert len(res) == 2, out
    scores = [x["relevance_score"] for x in res]
    assert scores == sorted(scores, reverse=True), scores
    assert all(0.0 <= s <= 1.0 for s in scores), scores
    assert res[0]["index"] == 1, out
    assert res[0]["document"]["text"] == docs[1], out
    assert out["usage"]["total_tokens"] > 0, out
    r = http.post("/v1/rerank", json={**body, "top_n": None, "return_documents": False})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert sorted(x["index"] for x in res) == [0, 1, 2, 3]
    assert all("document" not in x or x["document"] is None for x in res), res


# ---------------------------------------------------------------------------------------------
# REST


COLLECTION_FIELDS = ("name", "embedding_model", "dimension", "embedder_fingerprint", "documents",
                     "chunks")


def test_collections_crud(http):
    name = fresh_name()
    r = http.post("/api/v1/collections", json={"name": name})
    assert r.status_code == 201, r.text
    c = r.json()
    for key in COLLECTION_FIELDS:
        assert key in c, (key, c)
    assert c["name"] == name and c["documents"] == 0 and c["chunks"] == 0 and c["dimension"] > 0
    try:
        assert_error(http.post("/api/v1/collections", json={"name": name}), 409, "ALREADY_EXISTS")
        r = http.get(f"/api/v1/collections/{name}")
        assert r.status_code == 200 and r.json()["name"] == name, r.text
        r = http.get("/api/v1/collections")
        assert r.status_code == 200, r.text
        assert name in [x["name"] for x in r.json()["collections"]], r.text
    finally:
        r = http.delete(f"/api/v1/collections/{name}")
    assert r.status_code == 204, r.text
    assert_error(http.get(f"/api/v1/collections/{name}"), 404, "NOT_FOUND")
    assert_error(http.delete(f"/api/v1/collections/{name}"), 404, "NOT_FOUND")


DOC_TEXT = ("Pump seals\n\nThe Zorblax 7 pump uses seal ZS-77 with ceramic faces. "
            "Replace seal ZS-77 every 4000 hours of running.\n\n"
            "The Zorblax 7 impeller is made of stainless steel and turns at 2900 rpm.")


def test_documents_ingest_get_delete(http):
    name = fresh_name()
    doc = {"id": "zorblax.md", "title": "Zorblax 7", "text": DOC_TEXT,
           "metadata": {"source": "http-test", "lang": "en"}}
    other = {"id": "other.txt", "text": "Bananas are yellow fruit rich in potassium."}
    try:
        r = http.post(f"/api/v1/collections/{name}/documents", json={"documents": [doc, other]})
        assert r.status_code == 200, r.text
        s = r.json()
        assert s["added"] == 2 and s["failed"] == 0 and s["chunks"] >= 2, s
        assert s.get("errors") == [], f"IngestSummary without 'errors': {s}"
        # The same again changes nothing.
        s = http.post(f"/api/v1/collections/{name}/documents", json={"documents": [doc]}).json()
        assert s["unchanged"] == 1 and s["added"] == 0, s
        r = http.get(f"/api/v1/collections/{name}/documents/zorblax.md", params={"chunks": "true"})
        assert r.status_code == 200, r.text
        got = r.json()
        d = got["document"]
        for key in ("id", "title", "metadata", "content_hash", "indexed_with", "chunk_ids", "seq"):
            assert key in d, (key, d)
        assert d["id"] == "zorblax.md" and d["title"] == "Zorblax 7", d
        assert d["metadata"] == doc["metadata"], d
        chunks = got["chunks"]
        assert [c["chunk_id"] for c in chunks] == d["chunk_ids"], got
        assert [c["ordinal"] for c in chunks] == list(range(len(chunks))), got
        for c in chunks:
            # Spans count characters of the (already normalised) document text.
            assert DOC_TEXT[c["span_start"]:c["span_end"]] == c["text"], c
            assert "heading_path" in c
        # Without ?chunks the chunks are left out.
        r = http.get(f"/api/v1/collections/{name}/documents/zorblax.md")
        assert r.status_code == 200 and r.json()["document"]["id"] == "zorblax.md", r.text
        assert not r.json().get("chunks"), r.text
        # A metadata filter keeps the other document out.
        # (The filter is metadata pairs every hit's document must have, as gRPC's.)
        r = http.post(f"/api/v1/collections/{name}/search",
                      json={"query": "seal", "mode": "bm25",
                            "filter": {"source": "http-test"}})
        assert r.status_code == 200, r.text
        assert {h["doc_id"] for h in r.json()["hits"]} == {"zorblax.md"}, r.text
        # A filter must be string pairs.
        r = http.post(f"/api/v1/collections/{name}/search",
                      json={"query": "seal", "filter": {"metadata": {"source": "http-test"}}})
        assert_error(r, 400, "INVALID_ARGUMENT")
        r = http.delete(f"/api/v1/collections/{name}/documents/zorblax.md")
        assert r.status_code == 200, r.text
        assert r.json() == {"deleted": 1, "missing": []}, r.text
        assert_error(http.get(f"/api/v1/collections/{name}/documents/zorblax.md"), 404, "NOT_FOUND")
        assert_error(http.delete(f"/api/v1/collections/{name}/documents/zorblax.md"), 404, "NOT_FOUND")
        c = http.get(f"/api/v1/collections/{name}").json()
        assert c["documents"] == 1, c
    finally:
        http.delete(f"/api/v1/collections/{name}")


def test_documents_failure_reported(http):
    name = fresh_name()
    try:
        r = http.post(f"/api/v1/collections/{name}/documents", json={"documents": [
            {"id": "ok.md", "text": "Pumps move water."}, {"id": "empty.md", "text": ""}]})
        assert r.status_code == 200, r.text
        s = r.json()
        assert s["added"] == 1 and s["failed"] == 1, s
        assert "errors" in s, f"IngestSummary without 'errors': {s}"
        assert [f[0] for f in s["errors"]] == ["empty.md"], s
        assert isinstance(s["errors"][0][1], str) and s["errors"][0][1], s
    finally:
        http.delete(f"/api/v1/collections/{name}")


def search(http, query, **kw):
    r = http.post(f"/api/v1/collections/{COLLECTION}/search", json={"query": query, **kw})
    assert r.status_code == 200, r.text
    out = r.json()
    assert isinstance(out["took_ms"], (int, float)) and isinstance(out["notes"], list), out
    for i, h in enumerate(out["hits"]):
        assert h["rank"] == i + 1, out
        for key in ("doc_id", "chunk_id", "ordinal", "title", "text", "span_start", "span_end",
                    "heading_path", "score"):
            assert key in h, (key, h)
        for key in ("dense", "bm25", "fused", "rerank"):
            assert key in h["stages"], h
    return out


def test_search_modes(http, kb):
    out = search(http, "XJ-9000-B", mode="bm25", k=3)
    assert 0 < len(out["hits"]) <= 3, out
    top = out["hits"][0]
    assert top["doc_id"].endswith("parts-catalog.md"), out
    assert "XJ-9000-B" in top["text"]
    assert top["stages"]["bm25"] is not None and top["stages"]["dense"] is None, top

    out = search(http, "What does the KV cache store?", mode="dense", k=2)
    assert 0 < len(out["hits"]) <= 2, out
    top = out["hits"][0]
    assert top["doc_id"].endswith("kv-cache.md"), out
    assert top["stages"]["dense"] is not None and top["stages"]["bm25"] is None, top

    out = search(http, "XJ-9000-B", k=5)  # hybrid is the default
    top = out["hits"][0]
    assert top["doc_id"].endswith("parts-catalog.md"), out
    assert top["stages"]["fused"] is not None, top
    scores = [h["score"] for h in out["hits"]]
    assert scores == sorted(scores, reverse=True), scores

    out = search(http, "XJ-9000-B", mode="hybrid", k=1)
    assert len(out["hits"]) == 1, out


def test_search_hit_matches_stored_chunk(http, kb):
    hit = search(http, "XJ-9000-B", mode="bm25", k=1)["hits"][0]
    r = http.get(f"/api/v1/collections/{COLLECTION}/documents/{hit['doc_id']}",
                 params={"chunks": "true"})
    assert r.status_code == 200, r.text
    chunk = {c["chunk_id"]: c for c in r.json()["chunks"]}[hit["chunk_id"]]
    assert chunk["text"] == hit["text"], (chunk, hit)
    assert (chunk["span_start"], chunk["span_end"]) == (hit["span_start"], hit["span_end"])


def check_answer(http, ans):
    for key in ("text", "not_found", "citations", "short_answer", "stats", "total_ms", "model"):
        assert key in ans, (key, ans)
    assert ans["text"].strip(), ans
    check_citations(ans["citations"], ans["text"])
    chunks = {}
    for c in ans["citations"]:
        r = http.get(f"/api/v1/collections/{COLLECTION}/documents/{c['doc_id']}",
                     params={"chunks": "true"})
        assert r.status_code == 200, r.text
        for ch in r.json()["chunks"]:
            chunks[ch["chunk_id"]] = ch
        ch = chunks[c["chunk_id"]]
        # A citation's span is its chunk's span and its text is exactly the chunk's text.
        assert c["text"] == ch["text"], (c, ch)
        assert (c["span_start"], c["span_end"]) == (ch["span_start"], ch["span_end"]), (c, ch)
    sa = ans["short_answer"]
    if sa is not None:
        cited = {c["number"]: c for c in ans["citations"]}
        assert sa["number"] in cited, (sa, cited)
        c = cited[sa["number"]]
        assert sa["doc_id"] == c["doc_id"], (sa, c)
        assert c["span_start"] <= sa["span_start"] <= sa["span_end"] <= c["span_end"], (sa, c)
        off = c["span_start"]
        assert c["text"][sa["span_start"] - off:sa["span_end"] - off] == sa["text"], (sa, c)


def test_ask(http, kb):
    r = http.post(f"/api/v1/collections/{COLLECTION}/ask",
                  json={"question": SEAL_QUESTION, "temperature": 0, "seed": 1})
    assert r.status_code == 200, r.text
    ans = r.json()
    check_answer(http, ans)
    assert not ans["not_found"], ans
    assert any(c["doc_id"].endswith("parts-catalog.md") for c in ans["citations"]), ans


def test_ask_stream(http, kb):
    body = {"question": "What is prefill?", "stream": True, "max_tokens": 120, "temperature": 0}
    deltas, final = [], None
    with http.stream("POST", f"/api/v1/collections/{COLLECTION}/ask", json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream"), r.headers
        for event, data in sse_events(r):
            assert final is None, f"event after final: {event} {data}"
            assert event in ("delta", "final"), (event, data)
            if event == "delta":
                deltas.append(json.loads(data)["text"])
            else:
                final = json.loads(data)
    assert final is not None, "the stream ended without its final event"
    assert "".join(deltas) == final["text"], (deltas, final["text"])
    check_answer(http, final)
    # Same question without streaming, greedy: the same text.
    body["stream"] = False
    r = http.post(f"/api/v1/collections/{COLLECTION}/ask", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == final["text"]


JOB_PROGRESS = ("documents_total", "documents_done", "bytes_total", "bytes_done", "added", "updated",
                "unchanged", "failed", "chunks", "deleted", "documents_per_second", "eta_seconds")


def test_jobs(http, kb):
    name = fresh_name("job")
    try:
        r = http.post("/api/v1/jobs", json={"collection": name, "paths": [KB]})
        assert r.status_code == 201, r.text
        job = r.json()
        for key in ("id", "spec", "state", "progress", "errors", "created_unix_ms"):
            assert key in job, (key, job)
        assert job["spec"]["collection"] == name and job["spec"]["paths"] == [KB], job
        assert job["state"] in ("queued", "running", "succeeded"), job
        records = wait_job(http, job["id"])
        last = records[-1]
        assert last["state"] == "succeeded", last
        p = last["progress"]
        for key in JOB_PROGRESS:
            assert key in p, (key, p)
        n = len(kb_files())
        assert p["documents_done"] == n and p["added"] == n and p["failed"] == 0, p
        assert p["chunks"] > 0, p
        assert last["finished_unix_ms"] >= last["created_unix_ms"], last
        done = [rec["progress"]["documents_done"] for rec in records]
        assert done == sorted(done), done
        r = http.get(f"/api/v1/jobs/{job['id']}")
        assert r.status_code == 200 and r.json()["state"] == "succeeded", r.text
        r = http.get("/api/v1/jobs")
        assert r.status_code == 200, r.text
        assert job["id"] in [j["id"] for j in r.json()["jobs"]], r.text
        # Cancelling a finished job changes nothing and answers its record.
        r = http.post(f"/api/v1/jobs/{job['id']}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["id"] == job["id"] and r.json()["state"] == "succeeded", r.text
        c = http.get(f"/api/v1/collections/{name}").json()
        assert c["documents"] == n, c
        found = http.post(f"/api/v1/collections/{name}/search",
                          json={"query": "XJ-9000-B", "mode": "bm25", "k": 1}).json()
        assert found["hits"][0]["doc_id"].endswith("parts-catalog.md"), found
    finally:
        http.delete(f"/api/v1/collections/{name}")
    assert_error(http.get("/api/v1/jobs/no-such-job"), 404, "NOT_FOUND")


def test_job_outside_allowed_roots(http):
    r = http.post("/api/v1/jobs", json={"collection": fresh_name("job"), "paths": ["/etc"]})
    assert 400 <= r.status_code < 500, r.text
    assert_error(r, r.status_code)


# ---------------------------------------------------------------------------------------------
# health and metrics


def test_health_without_token():
    with new_client(token=None) as c:
        r = c.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready"}, r.text


def test_metrics_families(http, kb):
    r = metrics_text(http)
    assert r.headers["content-type"].startswith("application/openmetrics-text"), r.headers
    assert r.text.rstrip().endswith("# EOF"), r.text[-200:]
    families, samples = parse_metrics(r.text)
    for name in ("ragd_build_info", "ragd_requests_total", "ragd_request_duration_seconds",
                 "ragd_stage_duration_seconds", "ragd_generated_tokens_total",
                 "ragd_generation_queue_depth", "ragd_generation_refusals_total", "ragd_jobs",
                 "ragd_collection_documents", "ragd_collection_chunks"):
        assert has_family(families, name), f"{name} missing; families: {sorted(families)}"
    info = [l for n, l, _ in samples if n == "ragd_build_info"]
    assert info and info[0].get("version"), info
    assert families["ragd_request_duration_seconds"].type == "histogram"
    assert families["ragd_stage_duration_seconds"].type == "histogram"
    assert families["ragd_generation_queue_depth"].type == "gauge"
    docs = sample_sum(samples, "ragd_collection_documents", collection=COLLECTION)
    assert docs == kb["documents"] or docs >= len(kb_files()), docs


def test_metrics_count_requests(http, kb):
    def by_route():
        _, samples = parse_metrics(metrics_text(http).text)
        out = {}
        for n, l, v in samples:
            if n == "ragd_requests_total" and l.get("protocol") == "http":
                out[l.get("route")] = out.get(l.get("route"), 0) + v
        return out

    before = by_route()
    for _ in range(3):
        assert http.get("/api/v1/collections").status_code == 200
    assert http.get(f"/api/v1/collections/{COLLECTION}").status_code == 200
    after = by_route()
    grown = {r: after[r] - before.get(r, 0) for r in after if after[r] > before.get(r, 0)}
    assert any(d >= 3 and "collections" in (r or "") for r, d in grown.items()), (before, after)
    # A 2xx and an error are told apart by the status label.
    assert_error(http.get("/api/v1/collections/" + fresh_name("missing")), 404)
    _, samples = parse_metrics(metrics_text(http).text)
    statuses = {l.get("status") for n, l, _ in samples
                if n == "ragd_requests_total" and l.get("protocol") == "http"}
    assert len(statuses) >= 2, statuses


def test_metrics_stage_histograms(http, kb):
    search(http, "XJ-9000-B", mode="hybrid", k=3)
    r = http.post(f"/api/v1/collections/{COLLECTION}/ask",
                  json={"question": "What is NF4?", "max_tokens": 24})
    assert r.status_code == 200, r.text
    _, samples = parse_metrics(metrics_text(http).text)
    for stage in STAGES_SEARCH + STAGES_ASK:
        n = sample_sum(samples, "ragd_stage_duration_seconds_count", stage=stage)
        assert n > 0, f"stage {stage} has no observations"
    assert sample_sum(samples, "ragd_generated_tokens_total") > 0
    assert sample_sum(samples, "ragd_request_duration_seconds_count", protocol="http") > 0


# ---------------------------------------------------------------------------------------------
# bad input


def test_malformed_json(http, kb):
    r = http.post(f"/api/v1/collections/{COLLECTION}/search", content=b'{"query": "x", ',
                  headers={"content-type": "application/json"})
    assert_error(r, 400, "INVALID_ARGUMENT")
    r = http.post("/v1/chat/completions", content=b"not json at all",
                  headers={"content-type": "application/json"})
    assert_error(r, 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("path,body", [
    ("/api/v1/collections/{c}/search", {"query": "seal", "k": "ten"}),
    ("/api/v1/collections/{c}/search", {"query": 42}),
    ("/api/v1/collections/{c}/search", {"k": 3}),
    ("/api/v1/collections/{c}/search", {"query": "seal", "mode": "sideways"}),
    ("/api/v1/collections/{c}/ask", {"question": ["a", "b"]}),
    ("/v1/chat/completions", {"model": MODEL, "messages": "hello"}),
    ("/v1/embeddings", {"input": 5}),
    ("/api/v1/collections/{c}/documents", {"documents": [{"id": "x"}]}),
])
def test_wrong_types(http, kb, path, body):
    assert_error(http.post(path.format(c=COLLECTION), json=body), 400, "INVALID_ARGUMENT")


def test_empty_query(http, kb):
    r = http.post(f"/api/v1/collections/{COLLECTION}/search", json={"query": "   "})
    assert_error(r, 400, "INVALID_ARGUMENT")


def test_wrong_content_type(http, kb):
    r = http.post(f"/api/v1/collections/{COLLECTION}/search",
                  content=json.dumps({"query": "seal"}).encode(),
                  headers={"content-type": "text/plain"})
    assert_error(r, 415, "INVALID_ARGUMENT")


def test_oversized_body(http, kb):
    big = json.dumps({"query": "seal " * 420_000}).encode()  # ~2 MB > --max-message-bytes 1 MiB
    assert len(big) > 2_000_000
    r = http.post(f"/api/v1/collections/{COLLECTION}/search", content=big,
                  headers={"content-type": "application/json"})
    assert_error(r, 413, "RESOURCE_EXHAUSTED")
    # The server is fine afterwards.
    assert http.get("/healthz").status_code == 200


def test_unknown_collection(http, oai):
    nope = "nope-" + uuid.uuid4().hex[:8]
    assert_error(http.post(f"/api/v1/collections/{nope}/search", json={"query": "seal"}),
                 404, "NOT_FOUND")
    assert_error(http.post(f"/api/v1/collections/{nope}/ask", json={"question": "seal?"}),
                 404, "NOT_FOUND")
    assert_error(http.get(f"/api/v1/collections/{nope}/documents/x.md"), 404, "NOT_FOUND")
    with pytest.raises(openai.NotFoundError) as e:
        oai.chat.completions.create(model=f"ragd/{nope}",
                                    messages=[{"role": "user", "content": "seal?"}])
    assert_error(e.value.response, 404, "NOT_FOUND")
    if http.get("/api/v1/collections/nope").status_code == 404:
        r = http.post("/v1/chat/completions",
                      json={"model": "ragd/nope", "messages": [{"role": "user", "content": "x"}]})
        assert_error(r, 404, "NOT_FOUND")


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcdef"])
def test_auth_refused(token):
    with new_client(token=token) as c:
        for method, path in [("GET", "/api/v1/collections"), ("GET", "/v1/models"),
                             ("GET", "/metrics"), ("POST", f"/api/v1/collections/{COLLECTION}/search"),
                             ("POST", "/v1/chat/completions")]:
            r = c.request(method, path, json={"query": "x"} if method == "POST" else None)
            assert_error(r, 401, "UNAUTHENTICATED")


def test_openai_wrong_key():
    with httpx.Client(verify=tls(), timeout=TIMEOUT) as hc:
        bad = OpenAI(base_url=URL + "/v1", api_key="wrong-token-0123456789abcdef", http_client=hc,
                     max_retries=0)
        with pytest.raises(openai.AuthenticationError) as e:
            bad.models.list()
    assert_error(e.value.response, 401, "UNAUTHENTICATED")


def test_unknown_route(http):
    assert_error(http.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
    assert_error(http.get("/v1/nothing-here"), 404, "NOT_FOUND")


def test_wrong_method(http):
    """A known path with a method it does not serve still answers the error JSON."""
    r = http.put("/api/v1/collections", json={})
    assert_error(r, 405)


def test_client_disconnect_stops_generation(kb):
    """Closing a streamed chat mid-way frees its generation slot (the queue depth drops to 0)."""
    body = {"model": MODEL, "stream": True, "max_tokens": 400, "temperature": 0,
            "messages": [{"role": "user", "content":
                          "Write a long, detailed essay on the KV cache, prefill, decoding, "
                          "quantization, NF4 and QLoRA, with every detail you know."}]}
    with new_client() as watch:
        deadline = time.time() + 30
        while queue_depth(watch) != 0 and time.time() < deadline:
            time.sleep(0.2)  # leftovers of earlier tests
        assert queue_depth(watch) == 0
        _, samples = parse_metrics(metrics_text(watch).text)
        tokens_before = sample_sum(samples, "ragd_generated_tokens_total")
        stream_client = new_client()
        try:
            resp = stream_client.send(stream_client.build_request("POST", "/v1/chat/completions",
                                                                  json=body), stream=True)
            assert resp.status_code == 200, resp.read()
            lines = resp.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            chunk = json.loads(first[5:])
            assert chunk["object"] == "chat.completion.chunk", chunk
            seen = 0
            deadline = time.time() + 30
            while time.time() < deadline:
                seen = queue_depth(watch)
                if seen >= 1:
                    break
                time.sleep(0.05)
            assert seen >= 1, "no generation in flight while the stream was open"
        finally:
            stream_client.close()  # drops the connection mid-stream
        closed = time.time()
        depth, zero_after = None, None
        while time.time() < closed + 60:
            depth = queue_depth(watch)
            if depth == 0:
                zero_after = time.time() - closed
                break
            time.sleep(0.2)
        _, samples = parse_metrics(metrics_text(watch).text)
        generated = sample_sum(samples, "ragd_generated_tokens_total") - tokens_before
        print(f"queue depth back to 0 {zero_after} s after the disconnect; {generated} tokens")
        # The server notices the disconnect between decoded tokens, so the prompt's prefill
        # (~5 s for this prompt in a debug build on a small machine) may still finish first;
        # a generation that went on would write all 400 tokens (~15 s here).
        assert zero_after is not None and zero_after <= 20, \
            f"generation still in flight 20 s after the client went away (queue depth back to 0 " \
            f"after {zero_after} s; {generated} tokens generated for the request, max_tokens 400)"
        assert generated < 50, f"{generated} tokens generated although the client went away " \
            f"after the first chunk (queue depth back to 0 after {zero_after:.1f} s)"
