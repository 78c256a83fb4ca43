//! Shared helpers: the configuration tests use, and the location of the reference fixtures.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ragd::model::encoder::CandleEmbedder;
use ragd::Config;

/// A loopback port free a moment ago, for a server started as a process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Document `i` of a corpus for gRPC tests: pump manuals, each with its own part numbers and
/// wording.
pub fn pump_manual(i: usize) -> ragd::grpc::pb::DocumentInput {
    let parts = ["seal", "impeller", "bearing", "gasket", "valve", "shaft"];
    let places = [
        "boiler room",
        "cooling tower",
        "dock",
        "mine",
        "farm",
        "brewery",
    ];
    let part = parts[i % parts.len()];
    let place = places[(i / parts.len()) % places.len()];
    ragd::grpc::pb::DocumentInput {
        id: format!("pump-{i:03}"),
        title: format!("Pump PX-{i:03} manual"),
        text: format!(
            "Pump PX-{i:03} serves the {place}. Its {part} is part number {part}-{}-{:02}. \
             Inspect the {part} every {} weeks; replace it after {} hours of running.",
            i * 7,
            i % 13,
            2 + i % 5,
            1000 + 250 * (i % 9)
        ),
        metadata: [("place".to_string(), place.to_string())].into(),
    }
}

/// The reference fixtures shipped in the repository (`tests/fixtures`: MiniLM reference vectors,
/// the cross-encoder checkpoint head and its PyTorch logits), so a fresh clone passes alone.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Defaults plus the environment (RAGD_MODELS_DIR etc.): models come from the same cache the
/// CLI uses, fetched on first use.
pub fn config() -> Config {
    let mut cfg = Config::default();
    cfg.apply_env(|k| std::env::var(k).ok())
        .expect("valid RAGD_* environment");
    cfg
}

/// The default embedder, loaded once per test binary.
pub fn shared_embedder() -> Arc<CandleEmbedder> {
    static EMBEDDER: OnceLock<Arc<CandleEmbedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| Arc::new(ragd::wiring::load_embedder(&config()).expect("load embedder")))
        .clone()
}

/// The default embedder, by reference.
pub fn embedder() -> &'static CandleEmbedder {
    static EMBEDDER: OnceLock<Arc<CandleEmbedder>> = OnceLock::new();
    EMBEDDER.get_or_init(shared_embedder)
}

/// The default generator (SmolLM2), loaded once per test binary.
pub fn shared_generator() -> Arc<ragd::model::llm::GgufGenerator> {
    static GEN: OnceLock<Arc<ragd::model::llm::GgufGenerator>> = OnceLock::new();
    GEN.get_or_init(|| ragd::wiring::load_generator(&config()).expect("load SmolLM2"))
        .clone()
}

/// Asserts that `ragd.v1.Rag` reports SERVING on `channel` (a health check needs no token).
pub async fn assert_serving(channel: tonic::transport::Channel) {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "ragd.v1.Rag".into(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
}

/// A two-thread tokio runtime for tests that drive async clients from plain test threads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A self-signed certificate authority named "`name` CA", to sign test certificates with.
pub(crate) fn test_ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}
