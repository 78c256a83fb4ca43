// ragd web page. Plain JS, no dependencies, no build step.
//
// Server text (answers, document text, titles, error messages) is data: it is
// only ever placed into the page through textContent / createTextNode, never
// through innerHTML.
//
// The bearer token lives only in the `token` variable below (never in
// localStorage, sessionStorage or cookies).
"use strict";

(function () {
  let token = "";
  let askController = null;

  // The last final answer, kept for the citation panel and for tests.
  window.ragdLastAnswer = null;

  const $ = (id) => document.getElementById(id);

  const STATUS_LABELS = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Overloaded",
    500: "Internal error",
    501: "Not implemented",
    503: "Unavailable",
    504: "Timed out",
  };

  // gRPC code names, as carried in `error.code`, mapped to HTTP statuses
  // (used for errors that arrive inside an SSE stream).
  const CODE_STATUS = {
    INVALID_ARGUMENT: 400,
    FAILED_PRECONDITION: 400,
    OUT_OF_RANGE: 400,
    UNAUTHENTICATED: 401,
    PERMISSION_DENIED: 403,
    NOT_FOUND: 404,
    ALREADY_EXISTS: 409,
    ABORTED: 409,
    RESOURCE_EXHAUSTED: 429,
    UNIMPLEMENTED: 501,
    UNAVAILABLE: 503,
    DEADLINE_EXCEEDED: 504,
    INTERNAL: 500,
    UNKNOWN: 500,
    DATA_LOSS: 500,
    CANCELLED: 499,
  };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
    describe() {
      const label = STATUS_LABELS[this.status] || (this.status >= 500 ? "Server error" : "Error");
      return label + " (" + this.status + "): " + this.message;
    }
  }

  // ---------------------------------------------------------------- UI helpers

  function showError(err) {
    const el = $("error");
    let text;
    if (err instanceof ApiError) {
      text = err.describe();
    } else if (err && err.name === "AbortError") {
      return;
    } else {
      text = "Error: " + (err && err.message ? err.message : String(err));
    }
    el.textContent = text;
    el.hidden = false;
  }

  function clearError() {
    const el = $("error");
    el.textContent = "";
    el.hidden = true;
  }

  function setStatus(text) {
    $("status").textContent = text || "";
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (k === "class") node.className = v;
        else if (k === "dataset") Object.assign(node.dataset, v);
        else node.setAttribute(k, v);
      }
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function fmtScore(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    return v.toFixed(4);
  }

  function currentCollection() {
    return $("collection").value || "";
  }

  function requireCollection() {
    const c = currentCollection();
    if (!c) throw new Error("no collection selected (ingest documents first, or check the token)");
    return c;
  }

  function collectionPath(name) {
    return "/api/v1/collections/" + encodeURIComponent(name);
  }

  // ----------------------------------------------------------------- API calls

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    if (token) h["Authorization"] = "Bearer " + token;
    return h;
  }

  async function errorFromResponse(resp) {
    let message = resp.statusText || "request failed";
    try {
      const body = await resp.text();
      if (body) {
        try {
          const parsed = JSON.parse(body);
          if (parsed && parsed.error && parsed.error.message !== undefined) {
            message = String(parsed.error.message);
          } else {
            message = body;
          }
        } catch (_) {
          message = body;
        }
      }
    } catch (_) {
      // keep the status text
    }
    return new ApiError(resp.status, message);
  }

  async function api(method, path, body) {
    const init = { method: method, headers: headers() };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (!resp.ok) throw await errorFromResponse(resp);
    if (resp.status === 204) return null;
    return resp.json();
  }

  // --------------------------------------------------------------- collections

  let collectionsSeq = 0;

  async function loadCollections() {
    // Only the latest call may update the page: an older answer (say a 401
    // for the request sent before the token was typed) is dropped.
    const seq = ++collectionsSeq;
    clearError();
    setStatus("Loading collections…");
    const select = $("collection");
    const previous = select.value;
    try {
      const data = await api("GET", "/api/v1/collections");
      if (seq !== collectionsSeq) return;
      const list = (data && data.collections) || [];
      clear(select);
      for (const c of list) {
        const label = c.name + " (" + c.documents + " docs, " + c.chunks + " chunks)";
        select.appendChild(el("option", { value: c.name }, label));
      }
      if (list.some((c) => c.name === previous)) select.value = previous;
      setStatus(list.length ? list.length + " collection(s)" : "No collections yet");
    } catch (err) {
      if (seq !== collectionsSeq) return;
      clear(select);
      setStatus("");
      showError(err);
    }
  }

  // ----------------------------------------------------------------------- SSE

  // Reads a text/event-stream body, calling onEvent(name, data) for each event.
  async function readSse(resp, onEvent) {
    const reader = resp.body.getReader();
    const decoder = new TextDecoder("utf-8");
    let buffer = "";
    let eventName = "";
    let dataLines = [];

    const dispatch = () => {
      if (dataLines.length === 0) {
        eventName = "";
        return;
      }
      const name = eventName || "message";
      const data = dataLines.join("\n");
      eventName = "";
      dataLines = [];
      onEvent(name, data);
    };

    const handleLine = (line) => {
      if (line === "") {
        dispatch();
        return;
      }
      if (line.startsWith(":")) return; // comment / keep-alive
      const colon = line.indexOf(":");
      let field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") eventName = value;
      else if (field === "data") dataLines.push(value);
    };

    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let idx;
      while ((idx = buffer.search(/\r\n|\r|\n/)) !== -1) {
        // A lone "\r" at the very end may be the first half of "\r\n".
        if (buffer[idx] === "\r" && idx === buffer.length - 1) break;
        const line = buffer.slice(0, idx);
        const sepLen = buffer.startsWith("\r\n", idx) ? 2 : 1;
        buffer = buffer.slice(idx + sepLen);
        handleLine(line);
      }
    }
    buffer += decoder.decode();
    if (buffer.length) handleLine(buffer.replace(/\r$/, ""));
    dispatch();
  }

  // ----------------------------------------------------------------------- Ask

  function resetAnswer() {
    const answer = $("answer");
    clear(answer);
    answer.removeAttribute("aria-busy");
    $("not-found").hidden = true;
    const sa = $("short-answer");
    clear(sa);
    sa.hidden = true;
    closeCitation();
  }

  // Renders answer text, turning [n] / [n, m] markers into citation links when
  // a citation with that number exists.
  function renderAnswerText(container, text, citations) {
    clear(container);
    const known = new Set((citations || []).map((c) => c.number));
    const re = /\[(\d+(?:\s*,\s*\d+)*)\]/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      const numbers = m[1].split(",").map((s) => parseInt(s.trim(), 10));
      if (!numbers.every((n) => known.has(n))) continue;
      if (m.index > last) container.appendChild(document.createTextNode(text.slice(last, m.index)));
      numbers.forEach((n) => {
        const a = el("a", { class: "citation", href: "#", "data-number": String(n) }, "[" + n + "]");
        a.setAttribute("aria-label", "Show source " + n);
        container.appendChild(a);
      });
      last = m.index + m[0].length;
    }
    if (last < text.length) container.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderFinal(answer) {
    window.ragdLastAnswer = answer;
    const container = $("answer");
    container.removeAttribute("aria-busy");
    renderAnswerText(container, answer.text || "", answer.citations || []);

    const nf = $("not-found");
    nf.hidden = !answer.not_found;

    const sa = $("short-answer");
    clear(sa);
    if (answer.short_answer && answer.short_answer.text) {
      sa.appendChild(el("strong", null, "Short answer: "));
      sa.appendChild(document.createTextNode(answer.short_answer.text));
      if (answer.short_answer.number !== undefined && answer.short_answer.number !== null) {
        sa.appendChild(document.createTextNode(" "));
        const n = answer.short_answer.number;
        if ((answer.citations || []).some((c) => c.number === n)) {
          sa.appendChild(el("a", { class: "citation", href: "#", "data-number": String(n) }, "[" + n + "]"));
        } else {
          sa.appendChild(document.createTextNode("[" + n + "]"));
        }
      }
      sa.hidden = false;
    } else {
      sa.hidden = true;
    }

    const parts = [];
    const cites = (answer.citations || []).length;
    if (answer.not_found) parts.push("not found");
    else parts.push(cites + " citation" + (cites === 1 ? "" : "s"));
    if (typeof answer.total_ms === "number") parts.push(Math.round(answer.total_ms) + " ms");
    if (answer.model) parts.push(answer.model);
    setStatus("Answer: " + parts.join(" · "));
  }

  // Character (Unicode scalar value) helpers: spans are in code points.
  function codePoints(s) {
    return Array.from(s);
  }

  function showCitation(number) {
    const answer = window.ragdLastAnswer;
    if (!answer) return;
    const citation = (answer.citations || []).find((c) => c.number === number);
    if (!citation) return;

    document.querySelectorAll("a.citation.active").forEach((a) => a.classList.remove("active"));
    document.querySelectorAll('a.citation[data-number="' + number + '"]').forEach((a) => a.classList.add("active"));

    $("citation-heading").textContent = "Source [" + number + "]";
    $("citation-title").textContent = citation.title || "(untitled)";
    $("citation-doc").textContent = citation.doc_id + (citation.chunk_id ? "  (chunk " + citation.chunk_id + ")" : "");
    $("citation-span").textContent = "chars " + citation.span_start + "–" + citation.span_end;

    const box = $("citation-text");
    clear(box);
    const text = citation.text || "";
    const mark = el("mark", { id: "cited-span" });

    const sa = answer.short_answer;
    let split = null;
    if (sa && sa.number === number && sa.text) {
      const chars = codePoints(text);
      // Prefer the short answer's own span (relative to the chunk's span).
      if (typeof sa.span_start === "number" && typeof sa.span_end === "number") {
        const a = sa.span_start - citation.span_start;
        const b = sa.span_end - citation.span_start;
        if (a >= 0 && b <= chars.length && a < b && chars.slice(a, b).join("") === sa.text) {
          split = [chars.slice(0, a).join(""), sa.text, chars.slice(b).join("")];
        }
      }
      if (!split) {
        const i = text.indexOf(sa.text);
        if (i !== -1) split = [text.slice(0, i), sa.text, text.slice(i + sa.text.length)];
      }
    }
    if (split) {
      if (split[0]) mark.appendChild(document.createTextNode(split[0]));
      mark.appendChild(el("mark", { class: "short-answer" }, split[1]));
      if (split[2]) mark.appendChild(document.createTextNode(split[2]));
    } else {
      mark.textContent = text;
    }
    box.appendChild(mark);

    const panel = $("citation-panel");
    panel.hidden = false;
    mark.scrollIntoView({ block: "nearest" });
  }

  function closeCitation() {
    $("citation-panel").hidden = true;
    clear($("citation-text"));
    document.querySelectorAll("a.citation.active").forEach((a) => a.classList.remove("active"));
  }

  async function ask(question) {
    if (askController) askController.abort();
    const controller = new AbortController();
    askController = controller;
    clearError();
    resetAnswer();
    window.ragdLastAnswer = null;
    const button = $("ask-button");
    button.disabled = true;
    const answerEl = $("answer");
    let gotFinal = false;
    let streamError = null;
    try {
      const collection = requireCollection();
      setStatus("Asking…");
      answerEl.setAttribute("aria-busy", "true");
      const resp = await fetch(collectionPath(collection) + "/ask", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify({ question: question, stream: true }),
        signal: controller.signal,
      });
      if (!resp.ok) throw await errorFromResponse(resp);
      const ctype = resp.headers.get("Content-Type") || "";
      if (!ctype.includes("text/event-stream")) {
        // Server answered without streaming: treat the body as the Answer.
        renderFinal(await resp.json());
        gotFinal = true;
        return;
      }
      setStatus("Generating…");
      await readSse(resp, (name, data) => {
        if (controller.signal.aborted) return;
        let payload;
        try {
          payload = JSON.parse(data);
        } catch (_) {
          return;
        }
        if (name === "delta") {
          if (payload && typeof payload.text === "string") {
            answerEl.appendChild(document.createTextNode(payload.text));
          }
        } else if (name === "final") {
          gotFinal = true;
          renderFinal(payload);
        } else if (name === "error") {
          const e = (payload && payload.error) || {};
          const status = CODE_STATUS[e.code] || 500;
          streamError = new ApiError(status, e.message !== undefined ? String(e.message) : "stream error");
        }
      });
      if (streamError) throw streamError;
      if (!gotFinal && !controller.signal.aborted) {
        throw new Error("the answer stream ended without a final answer");
      }
    } catch (err) {
      if (!(err && err.name === "AbortError")) {
        setStatus("");
        showError(err);
      }
    } finally {
      answerEl.removeAttribute("aria-busy");
      if (askController === controller) {
        askController = null;
        button.disabled = false;
      }
    }
  }

  // -------------------------------------------------------------------- Search

  function renderHits(data) {
    const list = $("hits");
    clear(list);
    const hits = (data && data.hits) || [];
    if (hits.length === 0) {
      list.appendChild(el("li", { class: "empty" }, "No hits."));
    }
    for (const h of hits) {
      const li = el("li", { class: "hit", "data-doc-id": h.doc_id });
      li.appendChild(el("div", { class: "hit-title" }, h.title || "(untitled)"));
      const meta = "doc " + h.doc_id + " · chunk " + h.chunk_id + " · chars " + h.span_start + "–" + h.span_end +
        (h.heading_path && h.heading_path.length ? " · " + [].concat(h.heading_path).join(" › ") : "");
      li.appendChild(el("div", { class: "hit-meta doc-id" }, meta));
      const text = h.text || "";
      const chars = codePoints(text);
      const snippet = chars.length > 400 ? chars.slice(0, 400).join("") + "…" : text;
      li.appendChild(el("div", { class: "hit-text" }, snippet));
      const s = h.stages || {};
      const scores = "score " + fmtScore(h.score) +
        " · dense " + fmtScore(s.dense) +
        " · bm25 " + fmtScore(s.bm25) +
        " · fused " + fmtScore(s.fused) +
        " · rerank " + fmtScore(s.rerank);
      li.appendChild(el("div", { class: "hit-scores" }, scores));
      list.appendChild(li);
    }
    let status = hits.length + " hit" + (hits.length === 1 ? "" : "s");
    if (typeof data.took_ms === "number") status += " in " + Math.round(data.took_ms) + " ms";
    if (data.notes && data.notes.length) status += " · " + data.notes.join("; ");
    setStatus(status);
  }

  async function search() {
    clearError();
    const button = $("search-button");
    button.disabled = true;
    try {
      const collection = requireCollection();
      const body = {
        query: $("search-query").value,
        mode: $("search-mode").value,
        rerank: $("search-rerank").checked,
      };
      const k = parseInt($("search-k").value, 10);
      if (!Number.isNaN(k)) body.k = k;
      setStatus("Searching…");
      clear($("hits"));
      const data = await api("POST", collectionPath(collection) + "/search", body);
      renderHits(data);
    } catch (err) {
      setStatus("");
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------------- Tabs

  function selectTab(name) {
    for (const v of ["ask", "search"]) {
      const on = v === name;
      $("tab-" + v).setAttribute("aria-selected", on ? "true" : "false");
      $("view-" + v).hidden = !on;
    }
  }

  // ------------------------------------------------------------------- Wiring

  function init() {
    const tokenInput = $("token");
    tokenInput.addEventListener("input", () => {
      token = tokenInput.value.trim();
    });
    tokenInput.addEventListener("change", () => {
      token = tokenInput.value.trim();
      loadCollections();
    });
    $("settings").addEventListener("submit", (ev) => {
      ev.preventDefault();
      token = tokenInput.value.trim();
      loadCollections();
    });
    $("refresh-collections").addEventListener("click", () => loadCollections());

    $("tab-ask").addEventListener("click", () => selectTab("ask"));
    $("tab-search").addEventListener("click", () => selectTab("search"));

    $("ask-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const q = $("question").value.trim();
      if (q) ask(q);
    });
    $("search-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      search();
    });

    // Citation links live in the answer and the short-answer line.
    document.addEventListener("click", (ev) => {
      const a = ev.target.closest ? ev.target.closest("a.citation") : null;
      if (!a) return;
      ev.preventDefault();
      const n = parseInt(a.getAttribute("data-number"), 10);
      if (!Number.isNaN(n)) showCitation(n);
    });
    $("citation-close").addEventListener("click", closeCitation);

    // Try without a token first; a 401 tells the user to type one.
    token = tokenInput.value.trim();
    loadCollections();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
