#!/usr/bin/env python3
"""A short ragd client in Python with the standard grpcio packages.

Stubs are generated at run time from proto/ragd/v1/ragd.proto with grpcio-tools, so nothing
generated is committed. It checks health, ingests a few documents (client streaming), searches,
and asks (server streaming: answer text, then the checked answer with its citations).

    python3 -m venv ~/.cache/ragd/pyclient-venv
    ~/.cache/ragd/pyclient-venv/bin/pip install grpcio grpcio-tools grpcio-health-checking
    cargo run --release -- serve &
    ~/.cache/ragd/pyclient-venv/bin/python examples/python_client.py --addr 127.0.0.1:50051

Against a server with a token and TLS (`ragd serve --auth-token-file F --tls-cert C --tls-key K`),
pass the token in RAGD_AUTH_TOKEN (or --token) and the server's CA certificate with --tls-ca.
"""

import argparse
import collections
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


class _Metadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds one metadata pair (the bearer token) to every call."""

    def __init__(self, pair):
        self.pair = pair

    def _add(self, details):
        md = list(details.metadata or []) + [self.pair]
        return details._replace(metadata=md) if hasattr(details, "_replace") else \
            _Details(details.method, details.timeout, md, details.credentials,
                     details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, cont, details, request):
        return cont(self._add(details), request)

    def intercept_unary_stream(self, cont, details, request):
        return cont(self._add(details), request)

    def intercept_stream_unary(self, cont, details, requests):
        return cont(self._add(details), requests)

    def intercept_stream_stream(self, cont, details, requests):
        return cont(self._add(details), requests)


class _Details(collections.namedtuple(
        "_Details", ["method", "timeout", "metadata", "credentials", "wait_for_ready",
                     "compression"]), grpc.ClientCallDetails):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--collection", default="pyclient")
    parser.add_argument("--token", default=os.environ.get("RAGD_AUTH_TOKEN"),
                        help="bearer token (default: $RAGD_AUTH_TOKEN)")
    parser.add_argument("--tls-ca", default=os.environ.get("RAGD_TLS_CA"),
                        help="PEM CA file: connect with TLS, trusting it (default: $RAGD_TLS_CA)")
    parser.add_argument("--tls-name", default="localhost",
                        help="name the server certificate must carry (with --tls-ca)")
    args = parser.parse_args()
    pb, rpc = load_stubs()
    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(args.addr, creds,
                                      options=[("grpc.ssl_target_name_override", args.tls_name)])
    else:
        channel = grpc.insecure_channel(args.addr)
    grpc.channel_ready_future(channel).result(timeout=30)
    if args.token:
        # Every call carries the token; a call without it is refused (checked below).
        bare = rpc.RagStub(channel)
        try:
            bare.ListCollections(pb.ListCollectionsRequest(), timeout=10)
            sys.exit("a call without the token should be refused")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
            print(f"call without the token refused: {e.code().name}")
        header = ("authorization", f"Bearer {args.token}")
        channel = grpc.intercept_channel(channel, _Metadata(header))
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
