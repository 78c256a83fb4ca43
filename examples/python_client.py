#!/usr/bin/env python3
"""A short ragd client in Python with the standard grpcio packages.

Stubs are generated at run time from proto/ragd/v1/ragd.proto with grpcio-tools, so nothing
generated is committed. It checks health, ingests a few documents (client streaming), searches,
and asks (server streaming: answer text, then the checked answer with its citations).

    python3 -m venv ~/.cache/ragd/pyclient-venv
    ~/.cache/ragd/pyclient-venv/bin/pip install grpcio grpcio-tools grpcio-health-checking
    cargo run --release -- serve &
    ~/.cache/ragd/pyclient-venv/bin/python examples/python_client.py --addr 127.0.0.1:50051
"""

import argparse
import importlib
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_stubs():
    """Compiles ragd.proto into a temporary folder and imports the generated modules."""
    out = tempfile.mkdtemp(prefix="ragd-py-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{ROOT}/proto", f"-I{include}", f"--python_out={out}",
            f"--grpc_python_out={out}", "ragd/v1/ragd.proto"]
    if protoc.main(args) != 0:
        sys.exit("protoc failed on proto/ragd/v1/ragd.proto")
    sys.path.insert(0, out)
    return (importlib.import_module("ragd.v1.ragd_pb2"),
            importlib.import_module("ragd.v1.ragd_pb2_grpc"))


DOCS = [
    ("pump.md", "XJ-9000 pump", "The XJ-9000 pump built in 2021 uses shaft seal SS-441."),
    ("kv.md", "KV cache", "The KV cache stores attention keys and values so decoding reuses them."),
    ("nf4.md", "NF4", "NF4 is a 4-bit NormalFloat data type used to quantize model weights."),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--collection", default="pyclient")
    args = parser.parse_args()
    pb, rpc = load_stubs()
    channel = grpc.insecure_channel(args.addr)
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = rpc.RagStub(channel)

    def batches():
        docs = [pb.DocumentInput(id=i, title=t, text=x, metadata={"source": "python"})
                for i, t, x in DOCS]
        yield pb.IngestDocumentsRequest(collection=args.collection, documents=docs[:2])
        yield pb.IngestDocumentsRequest(documents=docs[2:])

    reply = stub.IngestDocuments(batches(), timeout=120)
    c = reply.counts
    print(f"ingested: {c.added} added, {c.updated} updated, {c.unchanged} unchanged, "
          f"{c.failed} failed, {c.chunks} chunks")

    request = pb.SearchRequest(collection=args.collection, query="Which seal fits the XJ-9000?",
                               options=pb.RetrievalOptions(k=2, mode=pb.SEARCH_MODE_HYBRID))
    found = stub.Search(request, timeout=30)
    for hit in found.hits:
        ch = hit.chunk
        print(f"  {hit.score:7.3f}  {ch.document_id} [{ch.span_start}..{ch.span_end}] {ch.text[:60]}")
    assert found.hits and found.hits[0].chunk.document_id == "pump.md", found

    try:
        bad = pb.SearchRequest(collection=args.collection, query="  ")
        stub.Search(bad, timeout=10)
        sys.exit("an empty query should be refused")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        print(f"empty query refused: {e.code().name}")

    ask = pb.AskRequest(collection=args.collection, question="What is NF4?")
    final = None
    for event in stub.Ask(ask, timeout=120):
        if event.WhichOneof("event") == "delta":
            print(event.delta, end="", flush=True)
        else:
            final = event.final
    assert final is not None, "Ask ended without its final message"
    cites = ", ".join(f"[{c.source_number}] {c.document_id}" for c in final.citations)
    print(f"\nchecked answer: {final.answer}\nsources: {cites or '(none)'}"
          f"\n{final.usage.completion_tokens} tokens, {final.timings.tokens_per_second:.0f} tokens/s")
    print("python client: ok")


if __name__ == "__main__":
    main()
