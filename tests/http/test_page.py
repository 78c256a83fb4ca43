"""Real-browser test of the web page served by `ragd serve` at GET /.

Drives Debian's headless Chromium through Selenium against a running server:
- Ask: streams an answer, clicks the first citation, and checks that the
  highlighted span (#cited-span) is exactly the citation's text, and that this
  text is exactly the stored chunk (REST GET .../documents/{id}?chunks=true).
- Search: "XJ-9000-B" in bm25 mode lists parts-catalog.md first.
- Errors: a wrong token shows "Unauthorized (401)" in #error; an unknown
  collection shows "Not found (404)".

Environment (set by scripts/http-clients):
  RAGD_HTTP_URL     base URL of the HTTP side, e.g. https://127.0.0.1:PORT
  RAGD_TOKEN        bearer token ("" or unset: the server runs without one)
  RAGD_COLLECTION   a collection holding examples/kb/*.md, already ingested
  RAGD_SCREENSHOT   where to save a PNG screenshot of the citation panel
Optional: RAGD_CA_CERT (CA file for the REST checks; without it TLS is not
verified), RAGD_CHROMIUM (default /usr/bin/chromium), RAGD_CHROMEDRIVER
(default /usr/bin/chromedriver), RAGD_ANSWER_TIMEOUT (seconds, default 120).
"""

import json
import os
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE_URL = os.environ.get("RAGD_HTTP_URL", "").rstrip("/")
TOKEN = os.environ.get("RAGD_TOKEN", "")
COLLECTION = os.environ.get("RAGD_COLLECTION", "")
SCREENSHOT = os.environ.get("RAGD_SCREENSHOT", "")
CA_CERT = os.environ.get("RAGD_CA_CERT", "")
CHROMIUM = os.environ.get("RAGD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RAGD_CHROMEDRIVER", "/usr/bin/chromedriver")
ANSWER_TIMEOUT = float(os.environ.get("RAGD_ANSWER_TIMEOUT", "120"))

QUESTION = "What does the KV cache store?"

if not BASE_URL or not COLLECTION:
    pytest.skip(
        "RAGD_HTTP_URL and RAGD_COLLECTION are not set: run this test through scripts/http-clients",
        allow_module_level=True,
    )


def log(msg):
    print(f"[test_page] {msg}", flush=True)


# ----------------------------------------------------------------- REST helper

def _ssl_context():
    if not BASE_URL.startswith("https:"):
        return None
    if CA_CERT:
        return ssl.create_default_context(cafile=CA_CERT)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def rest(method, path, body=None, token=TOKEN):
    """Calls the REST API; returns (status, parsed JSON or None)."""
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(BASE_URL + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=_ssl_context(), timeout=ANSWER_TIMEOUT) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


def coll_path(name):
    return "/api/v1/collections/" + urllib.parse.quote(name, safe="")


# -------------------------------------------------------------------- browser

@pytest.fixture(scope="module")
def driver():
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(exe):
            pytest.fail(f"{exe} is missing: apt-get install -y chromium chromium-driver")
    profile = tempfile.mkdtemp(prefix="ragd-page-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--ignore-certificate-errors",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    opts.accept_insecure_certs = True
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    log(f"starting {CHROMIUM} (profile {profile})")
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(driver):
    """A freshly loaded page (the token lives only in a JS variable, so a reload forgets it)."""
    log(f"opening {BASE_URL}/")
    driver.get(BASE_URL + "/")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert driver.find_element(By.ID, "token"), "no #token field"
    yield driver
    try:
        for entry in driver.get_log("browser"):
            if entry.get("level") in ("SEVERE", "WARNING"):
                log(f"browser console: {entry.get('level')}: {entry.get('message')}")
    except Exception:  # noqa: BLE001 - console logs are a debugging aid only
        pass


def error_text(drv):
    el = drv.find_element(By.ID, "error")
    return el.text if el.is_displayed() else ""


def wait_for(drv, what, cond, timeout):
    """Waits for cond(drv); fails early, with the page's #error text, if an error shows up."""
    def check(d):
        err = error_text(d)
        if err:
            raise AssertionError(f"while waiting for {what}, the page showed an error: {err!r}")
        return cond(d)

    try:
        return WebDriverWait(drv, timeout, poll_frequency=0.25).until(check)
    except TimeoutException:
        status = drv.find_element(By.ID, "status").text
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (status line: {status!r})")


def enter_token(drv, token):
    field = drv.find_element(By.ID, "token")
    field.clear()
    if token:
        field.send_keys(token)
    # Enter submits the settings form, which (re)loads the collections with the token.
    field.send_keys(Keys.ENTER)


def choose_collection(drv, name):
    def has_option(d):
        return d.execute_script(
            "return Array.from(document.getElementById('collection').options).some(o => o.value === arguments[0]);",
            name,
        )

    wait_for(drv, f"collection {name!r} in the picker", has_option, 30)
    Select(drv.find_element(By.ID, "collection")).select_by_value(name)
    log(f"picked collection {name!r}")


# ---------------------------------------------------------------------- tests

def test_ask_streams_answer_and_shows_cited_span(page):
    drv = page
    enter_token(drv, TOKEN)
    choose_collection(drv, COLLECTION)

    drv.find_element(By.ID, "question").send_keys(QUESTION)
    # Record whether any delta text showed up before the final answer.
    drv.execute_script(
        """
        window.__ragdSawDelta = false;
        const a = document.getElementById('answer');
        new MutationObserver(() => {
          if (!window.ragdLastAnswer && a.textContent.length > 0) window.__ragdSawDelta = true;
        }).observe(a, {childList: true, subtree: true, characterData: true});
        """
    )
    started = time.monotonic()
    drv.find_element(By.ID, "ask-button").click()
    log(f"asked {QUESTION!r}; waiting up to {ANSWER_TIMEOUT:.0f} s for the final answer")
    answer = wait_for(
        drv, "the final answer", lambda d: d.execute_script("return window.ragdLastAnswer;"), ANSWER_TIMEOUT
    )
    log(f"final answer after {time.monotonic() - started:.1f} s: {answer.get('text')!r}")
    log(f"streamed deltas seen before the final event: {drv.execute_script('return window.__ragdSawDelta;')}")
    log(f"short answer: {answer.get('short_answer')!r}; not_found: {answer.get('not_found')!r}")

    assert not answer.get("not_found"), f"the server found no answer: {answer!r}"
    citations = answer.get("citations") or []
    assert citations, f"the final answer has no citations: {answer!r}"

    answer_el = drv.find_element(By.ID, "answer")
    assert answer_el.get_attribute("textContent") == answer["text"], (
        "#answer does not show exactly the final answer text"
    )
    links = answer_el.find_elements(By.CSS_SELECTOR, "a.citation")
    assert links, f"no citation links in #answer (text: {answer['text']!r})"
    log(f"{len(links)} citation link(s): {[link.text for link in links]}")

    first = links[0]
    number = int(first.get_attribute("data-number"))
    assert first.text == f"[{number}]"
    first.click()
    panel = drv.find_element(By.ID, "citation-panel")
    wait_for(drv, "the citation panel", lambda d: panel.is_displayed(), 10)

    cited = drv.execute_script(
        """
        const n = arguments[0];
        const c = window.ragdLastAnswer.citations.find(c => c.number === n);
        const spans = document.querySelectorAll('#cited-span');
        return {expected: c, count: spans.length, actual: spans.length ? spans[0].textContent : null,
                shortMarks: document.querySelectorAll('#cited-span mark.short-answer').length};
        """,
        number,
    )
    citation = cited["expected"]
    assert citation, f"ragdLastAnswer has no citation numbered {number}"
    assert cited["count"] == 1, f"expected exactly one #cited-span, found {cited['count']}"
    assert cited["actual"] == citation["text"], (
        f"#cited-span text differs from citation [{number}].text:\n"
        f"  shown:    {cited['actual']!r}\n  expected: {citation['text']!r}"
    )
    log(f"#cited-span equals citation [{number}].text ({len(citation['text'])} chars, "
        f"{cited['shortMarks']} short-answer mark(s) inside)")

    panel_text = panel.text
    assert citation["doc_id"] in panel_text, "the panel does not name the document"
    assert f"chars {citation['span_start']}–{citation['span_end']}" in panel_text, (
        "the panel does not show the span as 'chars a–b'"
    )

    if SCREENSHOT:
        os.makedirs(os.path.dirname(os.path.abspath(SCREENSHOT)), exist_ok=True)
        drv.save_screenshot(SCREENSHOT)
        log(f"screenshot saved to {SCREENSHOT}")

    # Independent check through REST: the citation's text is exactly its stored chunk.
    status, doc = rest(
        "GET", coll_path(COLLECTION) + "/documents/" + urllib.parse.quote(citation["doc_id"], safe="") + "?chunks=true"
    )
    assert status == 200, f"GET document {citation['doc_id']!r} -> {status}: {doc!r}"
    chunks = {c["chunk_id"]: c for c in doc.get("chunks") or []}
    assert citation["chunk_id"] in chunks, (
        f"chunk {citation['chunk_id']!r} not among the document's chunks {sorted(chunks)}"
    )
    chunk = chunks[citation["chunk_id"]]
    assert chunk["text"] == cited["actual"], (
        f"stored chunk text differs from #cited-span:\n  chunk: {chunk['text']!r}\n  shown: {cited['actual']!r}"
    )
    assert (chunk["span_start"], chunk["span_end"]) == (citation["span_start"], citation["span_end"]), (
        f"chunk span {chunk['span_start']}..{chunk['span_end']} != citation span "
        f"{citation['span_start']}..{citation['span_end']}"
    )
    log(f"REST check: chunk {citation['chunk_id']} of {citation['doc_id']} matches the highlighted span")


def test_search_bm25_lists_parts_catalog_first(page):
    drv = page
    enter_token(drv, TOKEN)
    choose_collection(drv, COLLECTION)
    drv.find_element(By.ID, "tab-search").click()
    drv.find_element(By.ID, "search-query").send_keys("XJ-9000-B")
    Select(drv.find_element(By.ID, "search-mode")).select_by_value("bm25")
    drv.find_element(By.ID, "search-button").click()
    log("searching 'XJ-9000-B' (bm25)")
    wait_for(drv, "search hits", lambda d: d.find_elements(By.CSS_SELECTOR, "#hits li.hit"), 60)
    hits = drv.find_elements(By.CSS_SELECTOR, "#hits li.hit")
    doc_ids = [h.get_attribute("data-doc-id") for h in hits]
    log(f"{len(hits)} hit(s): {doc_ids}")
    assert doc_ids[0].endswith("parts-catalog.md"), f"first hit is {doc_ids[0]!r}, not parts-catalog.md"
    first_text = hits[0].text
    assert "XJ-9000-B" in first_text, f"the first hit's snippet lacks the query term: {first_text!r}"
    assert "bm25" in first_text and "dense –" in first_text, (
        f"per-stage scores missing (bm25 mode must show dense as '–'): {first_text!r}"
    )


def test_wrong_token_shows_unauthorized(page):
    drv = page
    if not TOKEN:
        pytest.skip("the server runs without a bearer token (RAGD_TOKEN empty): nothing to reject")
    enter_token(drv, "wrong-" + TOKEN)
    log("entered a wrong token; waiting for the 401 message")

    def unauthorized(d):
        return "Unauthorized (401)" in error_text(d)

    try:
        WebDriverWait(drv, 30, poll_frequency=0.25).until(unauthorized)
    except TimeoutException:
        pytest.fail(f"#error does not show 'Unauthorized (401)'; it shows {error_text(drv)!r}")
    log(f"#error: {error_text(drv)!r}")
    assert drv.find_element(By.ID, "collection").find_elements(By.TAG_NAME, "option") == [], (
        "the collection picker still lists collections after a 401"
    )


def test_unknown_collection_shows_not_found(page):
    drv = page
    enter_token(drv, TOKEN)
    choose_collection(drv, COLLECTION)
    # A collection that does not exist (e.g. deleted since the list was loaded).
    missing = "no-such-collection-for-page-test"
    drv.execute_script(
        "const s = document.getElementById('collection'); const o = document.createElement('option');"
        "o.value = o.textContent = arguments[0]; s.appendChild(o); s.value = arguments[0];",
        missing,
    )
    drv.find_element(By.ID, "tab-search").click()
    drv.find_element(By.ID, "search-query").send_keys("anything")
    drv.find_element(By.ID, "search-button").click()
    try:
        WebDriverWait(drv, 30, poll_frequency=0.25).until(lambda d: "Not found (404)" in error_text(d))
    except TimeoutException:
        pytest.fail(f"#error does not show 'Not found (404)'; it shows {error_text(drv)!r}")
    log(f"#error: {error_text(drv)!r}")
