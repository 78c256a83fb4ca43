//! The gRPC API: the generated code ([`pb`]), the `Rag` service ([`rag_service`]), the
//! proto ↔ domain conversions ([`convert`]), and the server ([`serve_with`]) that also serves
//! grpc.health.v1.Health and server reflection (v1 and v1alpha), so grpcurl-style tools and any
//! language's client work without the .proto file.
//!
//! Deadlines: a handler reads the call's `grpc-timeout` ([`deadline`]) and stops waiting a
//! little before it ([`within`]), answering DEADLINE_EXCEEDED. (tonic's transport also enforces
//! the header, but answers CANCELLED "Timeout expired" at the deadline itself.)

pub mod client;
pub mod convert;
pub mod rag_service;
pub mod security;
mod status;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::ServerTlsConfig;

use crate::config::Config;
use crate::error::{Result, ServiceError};
use crate::state::AppState;

/// Generated protobuf types and the `Rag` client and server.
pub mod pb {
    // Generated code: which lints fire depends on the proto, so `allow` rather than `expect`.
    #![allow(missing_docs, unused_qualifications, clippy::all)]
    tonic::include_proto!("ragd.v1");

    /// Encoded file descriptor set of ragd.v1, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ragd_descriptor");
}

/// How long before the deadline a handler gives up, so that our DEADLINE_EXCEEDED reaches the
/// caller before tonic's own timeout cancels the call.
const DEADLINE_MARGIN: Duration = Duration::from_millis(10);

/// The call's deadline from its `grpc-timeout` header (1–8 digits and a unit H, M, S, m, u or
/// n, per the gRPC HTTP/2 protocol), if any.
pub fn deadline<T>(req: &tonic::Request<T>) -> Option<Duration> {
    let value = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    parse_timeout(value)
}

fn parse_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(n * 3600),
        'M' => Duration::from_secs(n * 60),
        'S' => Duration::from_secs(n),
        'm' => Duration::from_millis(n),
        'u' => Duration::from_micros(n),
        'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// When blocking work started now for a call with `limit` should stop: when [`within`] stops
/// waiting for it, so that nothing runs on after the caller has its DEADLINE_EXCEEDED.
pub fn stop_at(limit: Option<Duration>) -> Option<crate::rag::retrieve::Deadline> {
    let started = Instant::now();
    limit.map(|l| crate::rag::retrieve::Deadline {
        started,
        stop: started + l.saturating_sub(DEADLINE_MARGIN),
    })
}

/// Awaits `fut`, giving up with [`ServiceError::DeadlineExceeded`] shortly before `limit`.
pub async fn within<T>(limit: Option<Duration>, fut: impl Future<Output = Result<T>>) -> Result<T> {
    let Some(limit) = limit else {
        return fut.await;
    };
    let start = Instant::now();
    let budget = limit.saturating_sub(DEADLINE_MARGIN);
    // A deadline inside the margin is already spent: answering now is the only way to be early.
    // (`timeout` polls the work before its timer, so a zero budget would race the work.)
    if budget.is_zero() {
        return Err(ServiceError::DeadlineExceeded { elapsed_ms: 0 });
    }
    match tokio::time::timeout(budget, fut).await {
        Ok(out) => out,
        Err(_) => Err(ServiceError::DeadlineExceeded {
            elapsed_ms: start.elapsed().as_millis() as u64,
        }),
    }
}

/// How a server protects itself: a bearer token checked on every RPC but health, and TLS.
#[derive(Clone, Debug)]
pub struct Security {
    /// The token check (a no-op without a token).
    pub auth: security::Authenticator,
    /// TLS settings; `None` serves plain TCP.
    pub tls: Option<ServerTlsConfig>,
}

impl Security {
    /// No token, no TLS.
    pub fn none() -> Self {
        Self {
            auth: security::Authenticator::new(None),
            tls: None,
        }
    }

    /// From the server settings, with `env` for `RAGD_AUTH_TOKEN` (see [`security`]).
    pub fn from_config(
        server: &crate::config::ServerConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            auth: security::Authenticator::new(security::server_token(server, env)?),
            tls: security::server_tls(server)?,
        })
    }
}

/// A task aborted when this is dropped, however its owner returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the task that closes idle collections every so often (see
/// `server.close_idle_collections_after_seconds`), unless that is 0; it stops when the
/// returned guard is dropped.
fn close_idle_collections(state: &AppState) -> Option<AbortOnDrop> {
    let idle = Duration::from_secs(state.config().server.close_idle_collections_after_seconds);
    if idle.is_zero() {
        return None;
    }
    // Look a few times per idle period (at most once a minute, at least once a second), so a
    // collection closes no later than about a quarter past its idle time.
    let period = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let state = state.clone();
    Some(AbortOnDrop(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let state = state.clone();
            let closed =
                tokio::task::spawn_blocking(move || state.close_idle_collections(idle)).await;
            if let Err(e) = closed {
                tracing::error!("closing idle collections failed: {e}");
            }
        }
    })))
}

/// Serves the API on `listener` until `shutdown` resolves, then shuts down gracefully: health
/// turns NOT_SERVING, running jobs stop after their current (committed) batch and stay
/// resumable, in-flight requests finish, the job store is flushed, and every open collection is
/// checkpointed (its HNSW graph dumped if behind). Jobs left running by a previous process are
/// resumed first. Every service but health is behind `security.auth`.
pub async fn serve_with(
    state: AppState,
    listener: TcpListener,
    security: Security,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use pb::rag_server::RagServer;
    use rag_service::RagService;

    let resumed = state.jobs().resume_all().context("resuming jobs")?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<RagServer<RagService>>().await;
    let max = state.config().server.max_message_bytes;
    let rag = RagServer::new(RagService::new(state.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let auth = security.auth;
    let rag = InterceptedService::new(rag, auth.clone());
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let addr = listener.local_addr()?;
    // TCP_NODELAY: without it a response's trailers wait for the client's delayed ACK (Nagle),
    // which added ~40 ms to every unary call in `ragd bench search --concurrency 1`.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tracing::info!(
        %addr,
        resumed,
        auth = auth.enabled(),
        tls = security.tls.is_some(),
        "serving ragd.v1.Rag"
    );
    // Runs until serve_with returns, on any path.
    let _closer = close_idle_collections(&state);
    let jobs = state.jobs().clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests and job batches");
        reporter.set_not_serving::<RagServer<RagService>>().await;
        jobs.stop();
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = security.tls {
        builder = builder.tls_config(tls).context("TLS settings")?;
    }
    builder
        .layer(tower::util::MapResponseLayer::new(standard_status_codes))
        .add_service(health)
        .add_service(InterceptedService::new(
            reflection().build_v1()?,
            auth.clone(),
        ))
        .add_service(InterceptedService::new(reflection().build_v1alpha()?, auth))
        .add_service(rag)
        .serve_with_incoming_shutdown(incoming, signal)
        .await?;
    let grace = Duration::from_secs(state.config().server.shutdown_grace_seconds);
    state.jobs().shutdown(grace).await;
    // Dump what the HNSW graphs hold, so the next start replays nothing.
    let checkpoint = state.clone();
    match tokio::task::spawn_blocking(move || checkpoint.checkpoint_all()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("checkpoint at shutdown: {e}"),
        Err(e) => tracing::error!("checkpoint at shutdown: {e}"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Rewrites a code tonic picks to the one gRPC's status-code table prescribes (the message is
/// kept): a request message over `max_decoding_message_size` is RESOURCE_EXHAUSTED, not
/// OUT_OF_RANGE. Clients classify (and retry) by these codes. (tonic's own `grpc-timeout` timer,
/// which answers CANCELLED "Timeout expired", sits outside the layers a server can add; handlers
/// answer DEADLINE_EXCEEDED a little earlier, see [`within`].)
fn standard_status_codes(
    mut response: tonic::codegen::http::Response<tonic::body::Body>,
) -> tonic::codegen::http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let message = |h: &tonic::codegen::http::HeaderMap, text: &str| {
        h.get("grpc-message").is_some_and(|m| {
            let m = m.to_str().unwrap_or_default();
            m.contains(text) || m.contains(&text.replace(' ', "%20"))
        })
    };
    let code = match headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
        Some("11") if message(headers, "message length too large") => {
            Some(tonic::Code::ResourceExhausted)
        }
        _ => None,
    };
    if let Some(code) = code {
        headers.insert(
            "grpc-status",
            tonic::codegen::http::HeaderValue::from(code as i32),
        );
    }
    response
}

/// Loads the models, binds `config.server.addr` and serves until `shutdown` resolves (see
/// [`grpc::serve_with`]).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = config.server.addr.clone();
    // Checked before the models load, so a refused exposure fails fast.
    let security = Security::from_config(&config.server, |k| std::env::var(k).ok())?;
    let planned: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("server.addr `{addr}`"))?;
    let exposure = security::exposure_check(
        planned,
        security.auth.enabled(),
        security.tls.is_some(),
        config.server.allow_unauthenticated,
    )?;
    let state = tokio::task::spawn_blocking(move || AppState::load(config)).await??;
    let listener = TcpListener::bind(&addr)
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
    serve_with(state, listener, security, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header() {
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("123456789m"), None);
        assert_eq!(parse_timeout("m"), None);
        assert_eq!(parse_timeout("5x"), None);
    }

    #[tokio::test]
    async fn a_deadline_inside_the_margin_fails_even_when_the_work_is_instant() {
        // CI once saw a 10 ms deadline answered OK: `timeout(0)` polled the finished work first.
        let got = within(Some(DEADLINE_MARGIN), async { Ok(1) }).await;
        assert!(
            matches!(got, Err(ServiceError::DeadlineExceeded { .. })),
            "{got:?}"
        );
        let got = within(Some(Duration::from_secs(5)), async { Ok(1) }).await;
        assert_eq!(got.unwrap(), 1);
    }
}
