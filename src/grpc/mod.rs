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

use crate::state::AppState;

/// Generated protobuf types and the `Rag` client and server.
pub mod pb {
    // Generated code: which lints fire depends on the proto, so `allow` rather than `expect`.
    #![allow(missing_docs, unused_qualifications, clippy::all)]
    tonic::include_proto!("ragd.v1");

    /// Encoded file descriptor set of ragd.v1, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ragd_descriptor");
}

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

pub use crate::api::{stop_at, within};

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
    serve_beside(state, listener, security, shutdown, async { Ok(()) }).await
}

/// [`serve_with`], running `beside` (another server over the same state, e.g. HTTP, which
/// stops on the same signal) from the moment jobs are resumed: the shutdown's last steps —
/// waiting for job batches, the checkpoint — wait for both to finish. Readiness turns false
/// ([`AppState::draining`]) when the shutdown begins.
pub async fn serve_beside(
    state: AppState,
    listener: TcpListener,
    security: Security,
    shutdown: impl Future<Output = ()> + Send + 'static,
    beside: impl Future<Output = anyhow::Result<()>>,
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
    let draining = state.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests and job batches");
        draining.start_draining();
        reporter.set_not_serving::<RagServer<RagService>>().await;
        jobs.stop();
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = security.tls {
        builder = builder.tls_config(tls).context("TLS settings")?;
    }
    let grpc = builder
        // Outermost, so that calls are counted with the codes clients receive.
        .layer(tower::layer::layer_fn(Metered))
        .layer(tower::util::MapResponseLayer::new(standard_status_codes))
        .add_service(health)
        .add_service(InterceptedService::new(
            reflection().build_v1()?,
            auth.clone(),
        ))
        .add_service(InterceptedService::new(reflection().build_v1alpha()?, auth))
        .add_service(rag)
        .serve_with_incoming_shutdown(incoming, signal);
    let grpc = async { grpc.await.context("serving gRPC") };
    tokio::try_join!(grpc, beside)?;
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

/// Counts and times each call in [`crate::metrics`] by method and status: the code of a
/// response that carries one in its headers (a refusal, an error), OK for one that starts (a
/// stream's final status travels in trailers, which this layer does not see).
#[derive(Clone)]
struct Metered<S>(S);

impl<S, B> tower::Service<tonic::codegen::http::Request<B>> for Metered<S>
where
    S: tower::Service<
        tonic::codegen::http::Request<B>,
        Response = tonic::codegen::http::Response<tonic::body::Body>,
    >,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        // Only the services served get a label of their own: any other path is one label.
        let route = if path.starts_with("/ragd.v1.") || path.starts_with("/grpc.") {
            path.to_owned()
        } else {
            "unmatched".to_owned()
        };
        let started = Instant::now();
        let answer = self.0.call(request);
        Box::pin(async move {
            let response = answer.await;
            if let Ok(r) = &response {
                let code = r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32);
                crate::metrics::global().request(
                    "grpc",
                    &route,
                    &format!("{code:?}"),
                    started.elapsed(),
                );
            }
            response
        })
    }
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
}
