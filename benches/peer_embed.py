"""The embedding peer for `ragd bench embed`: sentence-transformers on the same passages.

Same workload as `ragd bench embed --limit 1000 --batch 32`: the first N SciFact passages
(title + " " + text), all-MiniLM-L6-v2 from the same local folder, max_seq_length 256, batch 32,
torch on 2 threads, one warm-up batch. Prints one JSON line.

    /tmp/peers/venv/bin/python benches/peer_embed.py --model ~/.cache/ragd/models/all-MiniLM-L6-v2
"""
import argparse
import json
import os
import time


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--corpus", default=os.path.join(here, "../../shared/eval/scifact/corpus.jsonl"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    texts = []
    with open(args.corpus) as f:
        for line in f:
            if len(texts) >= args.limit:
                break
            d = json.loads(line)
            texts.append(((d.get("title") or "") + " " + (d.get("text") or "")).strip())
    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = 256
    tokens = sum(len(x) for x in model.tokenizer(texts, truncation=True, max_length=256)["input_ids"])
    model.encode(texts[: args.batch], batch_size=args.batch, normalize_embeddings=True)
    t0 = time.perf_counter()
    model.encode(texts, batch_size=args.batch, normalize_embeddings=True, show_progress_bar=False)
    s = time.perf_counter() - t0
    print(json.dumps({"peer": "sentence-transformers", "passages": len(texts), "tokens": tokens,
                      "seconds": s, "passages_per_s": len(texts) / s, "tokens_per_s": tokens / s,
                      "batch": args.batch, "threads": args.threads}))


if __name__ == "__main__":
    main()
