//! `ragd serve`: gRPC and HTTP over one state, started and stopped together. Both are
//! protected alike (the bearer token, TLS, the loopback rule), both stop accepting work on the
//! same signal, and the shutdown's last steps (job batches, the checkpoint) wait for both.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{Backend, Config};
use crate::grpc::{security, Security};
use crate::state::AppState;

/// Loads the models, binds `server.addr` (gRPC) and `server.http_addr` (HTTP, unless off) and
/// serves until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Checked before the models load, so a refused exposure or a bad address fails fast.
    let security = Security::from_config(&config.server, |k| std::env::var(k).ok())?;
    let grpc_addr = config.server.addr.clone();
    let http_addr = config.server.http().map(str::to_owned);
    let mut notices = Vec::new();
    for (field, addr) in [
        ("server.addr", Some(&grpc_addr)),
        ("server.http_addr", http_addr.as_ref()),
    ] {
        let Some(addr) = addr else { continue };
        let planned: SocketAddr = addr.parse().with_context(|| format!("{field} `{addr}`"))?;
        let notice = security::exposure_check(
            planned,
            security.auth.enabled(),
            security.tls.is_some(),
            config.server.allow_unauthenticated,
        )?;
        notices.extend(notice);
    }
    let http_tls = crate::http::tls_acceptor(&config.server)?;
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    if config.index.backend == Backend::Qdrant {
        // A cluster that does not answer fails the start, naming each node, before the models
        // load, rather than every call afterwards.
        crate::qdrant::QdrantStore::connect(&config.qdrant)
            .await
            .context(
                "index.backend = \"qdrant\": the [qdrant] cluster (qdrant.urls, RAGD_QDRANT_URLS)",
            )?;
    }
    let state = tokio::task::spawn_blocking(move || AppState::load(config)).await??;
    let grpc_listener = TcpListener::bind(&grpc_addr)
        .await
        .with_context(|| format!("binding {grpc_addr}"))?;
    let http_listener =
        match &http_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                format!("binding {addr} (server.http_addr; `off` serves no HTTP)")
            })?),
            None => None,
        };
    // Each notice once: both addresses usually share one.
    notices.dedup();
    for n in &notices {
        eprintln!("ragd: {n}");
    }
    let scheme = if security.tls.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!(
        "ragd: serving gRPC on {scheme}://{}",
        grpc_listener.local_addr()?
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let on_signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let http = match http_listener {
        Some(listener) => {
            eprintln!(
                "ragd: serving HTTP on {scheme}://{} (OpenAI-compatible /v1, REST /api/v1, /metrics, the page at /)",
                listener.local_addr()?
            );
            let router = crate::http::router(state.clone(), security.auth.clone());
            let signal = on_signal(stopped.clone());
            Some(crate::http::serve_with(
                router, listener, http_tls, signal, grace,
            ))
        }
        None => None,
    };
    let beside = async move {
        match http {
            Some(h) => h.await,
            None => Ok(()),
        }
    };
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let grpc_signal = on_signal(stopped);
    tokio::spawn(signal);
    crate::grpc::serve_beside(state, grpc_listener, security, grpc_signal, beside).await
}
