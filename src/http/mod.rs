//! The HTTP API beside gRPC: OpenAI-compatible routes ([`openai`]), REST JSON for what the CLI
//! and gRPC do ([`rest`]), Prometheus metrics, health and readiness, and a web page to ask
//! from. It is a second thin skin over the same operations as the gRPC handlers
//! ([`crate::api`] and [`AppState`]), with the same bearer token, TLS, limits and error
//! meanings ([`error`]).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (`/assets/app.js`, `/assets/style.css`) |
//! | `GET /healthz`, `GET /readyz` | alive; ready (models loaded, not shutting down) |
//! | `GET /metrics` | OpenMetrics text ([`crate::metrics`]) |
//! | `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`, `POST /v1/rerank` | OpenAI (and Cohere/Jina rerank) shapes |
//! | `/api/v1/...` | collections, documents, search, ask, jobs (see [`rest`]) |
//!
//! The page, its assets and the probes need no token; everything else does when one is set.

pub mod error;
mod listener;
mod openai;
mod rest;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use self::error::ApiError;
use crate::grpc::security::Authenticator;
use crate::state::AppState;

/// What the HTTP handlers share.
#[derive(Clone)]
struct Http {
    state: AppState,
    auth: Authenticator,
}

/// The HTTP API over `state`, guarded by `auth`.
pub fn router(state: AppState, auth: Authenticator) -> Router {
    let limit = state.config().server.max_message_bytes;
    let http = Http { state, auth };
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .merge(openai::routes())
        .merge(rest::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(http.clone(), authenticate));
    Router::new()
        .route("/", get(page))
        .route("/assets/app.js", get(app_js))
        .route("/assets/style.css", get(style_css))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(count))
        .with_state(http)
}

/// Serves `router` on `listener` (TLS when `tls` is given) until `shutdown` resolves, then
/// lets requests in flight finish for up to `grace`.
pub async fn serve_with(
    router: Router,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let app = router.into_make_service_with_connect_info::<listener::Peer>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let mut late = stop_rx.clone();
    let deadline = async move {
        let _ = late.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    let serving = async move {
        match tls {
            Some(acceptor) => {
                let listener = listener::TlsListener::new(listener, acceptor)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(signal)
                    .await
            }
            None => {
                axum::serve(listener::PlainListener(listener), app)
                    .with_graceful_shutdown(signal)
                    .await
            }
        }
    };
    tokio::select! {
        served = serving => served.context("serving HTTP")?,
        () = deadline => tracing::warn!(
            "HTTP requests still open {} s after the shutdown began were dropped",
            grace.as_secs()
        ),
    }
    Ok(())
}

/// The TLS settings for HTTP from the server's PEM files (see [`listener`]).
pub fn tls_acceptor(
    server: &crate::config::ServerConfig,
) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    listener::acceptor(server)
}

/// Refuses a request without the bearer token (when one is configured).
async fn authenticate(State(http): State<Http>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<listener::Peer>>()
        .map(|c| c.0 .0);
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match http.auth.check(header, peer) {
        Ok(()) => next.run(req).await,
        Err(why) => {
            let mut response = ApiError::new(tonic::Code::Unauthenticated, why).into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

/// Counts and times every request by its route pattern (not its path: no label per document).
async fn count(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    crate::metrics::global().request(
        "http",
        &route,
        response.status().as_str(),
        started.elapsed(),
    );
    response
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}: see the README's HTTP section",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    let mut e = ApiError::new(
        tonic::Code::Unimplemented,
        format!("{} is not served for {}", req.method(), req.uri().path()),
    );
    e.status = StatusCode::METHOD_NOT_ALLOWED;
    e
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Ready once the models are loaded (the state exists only then), until the shutdown begins.
async fn readyz(State(http): State<Http>) -> Response {
    if http.state.draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "shutting_down"})),
        )
            .into_response()
    } else {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    }
}

async fn metrics(State(http): State<Http>) -> Result<Response, ApiError> {
    let now = http
        .state
        .unmetered(|s| s.metrics_snapshot())
        .await
        .map_err(ApiError::from)?;
    let text = crate::metrics::global().encode(&now);
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE_CSS: &str = include_str!("page/style.css");

async fn page() -> impl IntoResponse {
    static_asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> impl IntoResponse {
    static_asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> impl IntoResponse {
    static_asset("text/css; charset=utf-8", STYLE_CSS)
}

fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // The page loads nothing from elsewhere and runs no inline script.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}
