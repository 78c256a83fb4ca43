//! ragd: a retrieval-augmented generation service.
//!
//! The service crate wires the two libraries together — [`ingest`] (documents and chunks) and
//! `index` (storage and search) — and owns the models ([`model`]), configuration ([`config`]),
//! ingestion pipeline and bulk jobs ([`jobs`]), retrieval ([`rag`]), the shared server state
//! ([`state`]), the gRPC API ([`grpc`]), benchmarks ([`bench`]) and the command line ([`cli`]).
//! [`serve`] runs the server; tests start it in-process with [`grpc::serve_with`].

pub mod bench;
pub mod cli;
pub mod config;
pub mod error;
pub mod eval;
pub mod grpc;
pub mod jobs;
pub mod model;
pub mod rag;
pub mod serving;
pub mod state;
pub mod wiring;

use std::future::Future;

use anyhow::Context;

pub use config::Config;
pub use error::ServiceError;

/// Loads the models, binds `config.server.addr` and serves until `shutdown` resolves (see
/// [`grpc::serve_with`]).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = config.server.addr.clone();
    // Checked before the models load, so a refused exposure fails fast.
    let security = grpc::Security::from_config(&config.server, |k| std::env::var(k).ok())?;
    let planned: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("server.addr `{addr}`"))?;
    let exposure = grpc::security::exposure_check(
        planned,
        security.auth.enabled(),
        security.tls.is_some(),
        config.server.allow_unauthenticated,
    )?;
    let state = tokio::task::spawn_blocking(move || state::AppState::load(config)).await??;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    if let Some(message) = exposure {
        eprintln!("ragd: {message}");
    }
    let scheme = if security.tls.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!("ragd: serving on {scheme}://{}", listener.local_addr()?);
    grpc::serve_with(state, listener, security, shutdown).await
}
