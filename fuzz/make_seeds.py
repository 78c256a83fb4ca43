#!/usr/bin/env python3
"""Writes the committed seed corpus under fuzz/corpus/<target>/seed-*.

Small real-looking inputs: a text, Markdown, HTML, PDF and JSONL file for the loaders; texts for
the chunkers; tiny GGUF files for the raw GGUF target (the byte-level BPE vocabulary of the
tiny GGUFs in tests/integration/generator.rs, and a SentencePiece one). Run from anywhere:
`python3 fuzz/make_seeds.py`.
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    with open(os.path.join(ROOT, target, "seed-" + name), "wb") as f:
        f.write(data)


MARKDOWN = """# Guide

This guide explains how to install ragd. It covers Linux and macOS.

## Install

### Linux

Download the archive, unpack it and run the installer.
- step one
- step two

```
# not a heading
```
"""
HTML = """<!doctype html><html><head><title>Install &amp; run</title><style>p{}</style></head>
<body><nav>Home | Docs</nav><h1>Install</h1><p>Run   the <b>installer</b>.<br>Then start it.</p>
<ul><li>one</li><li>two</li></ul><pre>  code
  block</pre><table><tr><td>a</td><td>b</td></tr></table>
<div hidden>secret</div><script>alert(1)</script></body></html>
"""
JSONL = """{"_id": "d1", "title": "Cats", "text": "Cats purr.", "metadata": {"year": 2020, "src": "x"}}
{"_id": 7, "text": "Rust compiles."}

{"title": "no text"}
[1, 2]
{"text": "  \\u00a0 "}
"""
MIXED = "Café naïve e\u0301te\u0301. 👨‍👩‍👧 family 🇯🇵. مرحبا بالعالم. 東京は日本の首都です。人口は約千四百万人；春には桜が咲きます？\n\n# Title\n- item\n"


def pdf():
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        None,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    stream = b"BT /F1 12 Tf 20 100 Td (Hello PDF world) Tj ET"
    objs[3] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offsets:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


# Loaders: one selector byte (format = byte % 5: txt, md, html, pdf, jsonl; bit 7: lossy UTF-8).
put("loaders", "txt", b"\x00" + "Plain text.\r\nSecond\tline  with\u00a0spaces.\n\n\nPara two.".encode())
put("loaders", "md", b"\x01" + MARKDOWN.encode())
put("loaders", "html", b"\x02" + HTML.encode())
put("loaders", "pdf", b"\x03" + pdf())
put("loaders", "jsonl", b"\x04" + JSONL.encode())
put("loaders", "lossy", b"\x80\xef\xbb\xbfBOM then bad \xff\xfe bytes " + MIXED.encode())

# Chunkers: a few configuration bytes, then the text.
put("chunkers", "md", b"\x00\x40\x00\x00\x03\x10\x00" + MARKDOWN.encode())
put("chunkers", "mixed", b"\x01\x10\x00\x02\x01\x08\x02" + MIXED.encode())
put("chunkers", "semantic", b"\x02\xfe\x00\x01\x02\x20\x00\x05\x01\x40\x01\x02"
    + b"Cats purr. Cats nap. Cats purr and nap. Rust compiles. Rust borrows. Rust compiles code.")
put("chunkers", "cjk", b"\x00\x08\x00\x01\x00\x08\x00" + ("人工智能是计算机科学的一个分支" * 4).encode())

# Structured GGUF tokenizer: arbitrary bytes drive the metadata builder.
put("gguf_tokenizer", "a", bytes(range(64)) * 4)
put("gguf_tokenizer", "b", bytes([0, 0, 5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 20) + b"Hello world \xe4\xb8\xad")
put("gguf_tokenizer", "c", bytes([1, 0, 3]) + bytes(range(255, 0, -1)))


# Raw GGUF: u16 text length, text, then a GGUF v3 file (metadata only, no tensors).
def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9


def gguf_value(t, v):
    if t == T_U32:
        return struct.pack("<I", v)
    if t == T_I32:
        return struct.pack("<i", v)
    if t == T_F32:
        return struct.pack("<f", v)
    if t == T_BOOL:
        return struct.pack("<B", v)
    if t == T_STRING:
        return gguf_str(v)
    et, items = v
    return struct.pack("<IQ", et, len(items)) + b"".join(gguf_value(et, x) for x in items)


def gguf(md):
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(md))
    for k, t, v in md:
        out += gguf_str(k) + struct.pack("<I", t) + gguf_value(t, v)
    return out


def byte_chars():
    n, out = 0, []
    for b in range(256):
        printable = 33 <= b <= 126 or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF
        if not printable:
            n += 1
        out.append(chr(b if printable else 255 + n))
    return out


def raw(text, file):
    t = text.encode()
    return struct.pack("<H", len(t)) + t + file


# As tiny_metadata() in tests/integration/generator.rs, plus a few merges.
tokens = byte_chars() + ["Ġt", "he", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
types = [1] * 258 + [3, 3, 3]
gpt2 = gguf([
    ("general.architecture", T_STRING, "qwen2"),
    ("general.alignment", T_U32, 32),
    ("tokenizer.ggml.model", T_STRING, "gpt2"),
    ("tokenizer.ggml.pre", T_STRING, "qwen2"),
    ("tokenizer.ggml.tokens", T_ARRAY, (T_STRING, tokens)),
    ("tokenizer.ggml.token_type", T_ARRAY, (T_I32, types)),
    ("tokenizer.ggml.merges", T_ARRAY, (T_STRING, ["Ġ t", "h e"])),
    ("tokenizer.ggml.eos_token_id", T_U32, 260),
    ("tokenizer.ggml.add_bos_token", T_BOOL, 0),
])
put("gguf_raw", "gpt2", raw("the <|im_end|> 中文 \u0013", gpt2))

spm_tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + ["\u2581", "h", "e", "he", "\u2581he", "llo", "l", "o", "lo"]
spm_types = [2, 3, 3] + [6] * 256 + [1] * 9
spm = gguf([
    ("tokenizer.ggml.model", T_STRING, "llama"),
    ("tokenizer.ggml.tokens", T_ARRAY, (T_STRING, spm_tokens)),
    ("tokenizer.ggml.token_type", T_ARRAY, (T_I32, spm_types)),
    ("tokenizer.ggml.scores", T_ARRAY, (T_F32, [0.0] * 259 + [-float(i) for i in range(9)])),
    ("tokenizer.ggml.unknown_token_id", T_U32, 0),
    ("tokenizer.ggml.bos_token_id", T_U32, 1),
    ("tokenizer.ggml.add_space_prefix", T_BOOL, 1),
])
put("gguf_raw", "spm", raw("hello  he\n\u2581x", spm))
