//! Prometheus metrics: the counters and histograms the process keeps ([`global`]), fed where
//! the work happens (the retriever times its stages, the generation pool its generations and
//! refusals, each API skin its requests), and the exposition `GET /metrics` serves
//! ([`Metrics::encode`]), in the OpenMetrics text format of the `prometheus-client` crate.
//!
//! Values that describe state rather than events (queue depth, jobs by state, documents and
//! chunks per collection) are read when scraped ([`Snapshot`]), so they can never drift from
//! what they describe.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A request, by the skin that served it, its route and its outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    protocol: &'static str,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    protocol: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectionLabels {
    collection: String,
}

/// A timed stage of answering a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Embedding the query.
    Embed,
    /// The BM25 search.
    Bm25,
    /// The dense (HNSW) search.
    Dense,
    /// Fusing the two lists.
    Fusion,
    /// The reranker.
    Rerank,
    /// The generator's prompt processing (prefill).
    Prompt,
    /// From the generation call to its first text.
    FirstToken,
    /// Decoding after the prefill.
    Decode,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Self::Embed => "embed",
            Self::Bm25 => "bm25",
            Self::Dense => "dense",
            Self::Fusion => "fusion",
            Self::Rerank => "rerank",
            Self::Prompt => "prompt",
            Self::FirstToken => "first_token",
            Self::Decode => "decode",
        }
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~33 s in factors of two: a BM25 lookup and a long generation both resolve.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    generated_tokens: Counter,
    generation_refusals: Counter,
}

/// What `/metrics` reads from the running server when scraped.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Generations running or waiting for a thread.
    pub generation_queue_depth: i64,
    /// Jobs by state name.
    pub jobs: Vec<(String, i64)>,
    /// (collection, documents, chunks).
    pub collections: Vec<(String, i64, i64)>,
}

/// The metrics every part of this process records into.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("ragd");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests served, by protocol (http, grpc), route and status (HTTP status, or gRPC \
             code of the response headers: a stream's final code is not seen)",
            requests.clone(),
        );
        let request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "request_duration",
            "Time to a response's headers (a stream's first message), by protocol and route",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let stages = Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register_with_unit(
            "stage_duration",
            "Time of each stage of a search or an answer: embed, bm25, dense, fusion, rerank, \
             prompt, first_token, decode",
            Unit::Seconds,
            stages.clone(),
        );
        let generated_tokens = Counter::default();
        registry.register(
            "generated_tokens",
            "Tokens the generator produced",
            generated_tokens.clone(),
        );
        let generation_refusals = Counter::default();
        registry.register(
            "generation_refusals",
            "Generations refused because every generation slot and queue place was taken",
            generation_refusals.clone(),
        );
        registry.register(
            "build",
            "The ragd build serving",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            registry,
            requests,
            request_seconds,
            stages,
            generated_tokens,
            generation_refusals,
        }
    }

    /// Counts a served request and times it.
    pub fn request(&self, protocol: &'static str, route: &str, status: &str, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                protocol,
                route: route.to_owned(),
                status: status.to_owned(),
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                protocol,
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Times one stage.
    pub fn stage(&self, stage: Stage, took: Duration) {
        self.stages
            .get_or_create(&StageLabels {
                stage: stage.label(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts generated tokens.
    pub fn generated(&self, tokens: usize) {
        self.generated_tokens.inc_by(tokens as u64);
    }

    /// Counts a refused generation.
    pub fn generation_refused(&self) {
        self.generation_refusals.inc();
    }

    /// The exposition: everything recorded, then `now`'s state, then `# EOF`.
    pub fn encode(&self, now: &Snapshot) -> String {
        let mut out = String::new();
        let mut scraped = Registry::with_prefix("ragd");
        let depth = Gauge::<i64>::default();
        depth.set(now.generation_queue_depth);
        scraped.register(
            "generation_queue_depth",
            "Generations running or waiting for a generation thread",
            depth,
        );
        let jobs = Family::<StateLabels, Gauge>::default();
        for (state, n) in &now.jobs {
            jobs.get_or_create(&StateLabels {
                state: state.clone(),
            })
            .set(*n);
        }
        scraped.register("jobs", "Bulk ingestion jobs by state", jobs);
        let documents = Family::<CollectionLabels, Gauge>::default();
        let chunks = Family::<CollectionLabels, Gauge>::default();
        for (name, d, c) in &now.collections {
            let labels = CollectionLabels {
                collection: name.clone(),
            };
            documents.get_or_create(&labels).set(*d);
            chunks.get_or_create(&labels).set(*c);
        }
        scraped.register(
            "collection_documents",
            "Documents stored per collection",
            documents,
        );
        scraped.register("collection_chunks", "Chunks stored per collection", chunks);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &scraped);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_once_and_ends_with_eof() {
        let m = Metrics::new();
        m.request(
            "http",
            "/v1/chat/completions",
            "200",
            Duration::from_millis(3),
        );
        m.stage(Stage::Bm25, Duration::from_micros(700));
        m.generated(5);
        let text = m.encode(&Snapshot {
            generation_queue_depth: 2,
            jobs: vec![("running".into(), 1)],
            collections: vec![("kb".into(), 6, 40)],
        });
        for want in [
            "ragd_requests_total{protocol=\"http\",route=\"/v1/chat/completions\",status=\"200\"} 1",
            "ragd_request_duration_seconds_count{protocol=\"http\",route=\"/v1/chat/completions\"} 1",
            "ragd_stage_duration_seconds_bucket{le=\"0.001\",stage=\"bm25\"} 1",
            "ragd_generated_tokens_total 5",
            "ragd_build_info{version=",
            "ragd_generation_queue_depth 2",
            "ragd_jobs{state=\"running\"} 1",
            "ragd_collection_documents{collection=\"kb\"} 6",
            "ragd_collection_chunks{collection=\"kb\"} 40",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
