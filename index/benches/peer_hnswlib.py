"""hnswlib on the vectors written by `cargo bench -p ragd-index --bench dense_search`.

Same M / ef_construction, build with the machine's threads, queries single-threaded
(batched knn_query with num_threads=1, so no Python per-query overhead), recall@10 against
the same brute-force ground truth.

    python3 -m venv /tmp/peers/venv && /tmp/peers/venv/bin/pip install numpy hnswlib
    /tmp/peers/venv/bin/python index/benches/peer_hnswlib.py /tmp/ragd-bench
"""
import json
import os
import sys
import time

import hnswlib
import numpy as np

M = 16
EF_CONSTRUCTION = 200
K = 10
EFS = [16, 32, 64, 96, 128, 256, 512]


def read_vectors(path):
    with open(path, "rb") as f:
        n, dim = np.frombuffer(f.read(8), dtype="<u4")
        return np.frombuffer(f.read(), dtype="<f4").reshape(int(n), int(dim))


def main(directory):
    base = read_vectors(os.path.join(directory, "base.f32"))
    queries = read_vectors(os.path.join(directory, "queries.f32"))
    truth = np.fromfile(os.path.join(directory, "gt.u32"), dtype="<u4").reshape(len(queries), K)
    n, dim = base.shape
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
    threads = os.cpu_count() or 1
    start = time.perf_counter()
    index.add_items(base, np.arange(n), num_threads=threads)
    build = time.perf_counter() - start
    print(f"hnswlib n={n} dim={dim} M={M} efC={EF_CONSTRUCTION} build={build:.1f}s ({threads} threads)")
    runs = []
    for ef in EFS:
        index.set_ef(ef)
        start = time.perf_counter()
        labels, _ = index.knn_query(queries, k=K, num_threads=1)
        elapsed = time.perf_counter() - start
        recall = np.mean([len(set(l) & set(t)) / K for l, t in zip(labels, truth)])
        qps = len(queries) / elapsed
        print(f"hnswlib ef={ef:4d} recall@10={recall:.4f} qps={qps:.0f} (1 thread)")
        runs.append({"ef": ef, "recall": round(float(recall), 4), "qps": round(qps)})
    result = {"n": n, "dim": dim, "build_s": round(build, 2), "runs": runs}
    with open(os.path.join(directory, "hnswlib_results.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ragd-bench")
