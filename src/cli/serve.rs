//! `ragd serve`: the gRPC and HTTP servers ([`crate::server`]), until SIGINT or SIGTERM.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;

/// `ragd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: server.addr, 127.0.0.1:50051].
    #[arg(long, env = "RAGD_ADDR")]
    pub addr: Option<String>,
    /// Address of the HTTP API (OpenAI-compatible, REST, /metrics, the web page), or `off`
    /// [default: server.http_addr, 127.0.0.1:8080].
    #[arg(long, env = "RAGD_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// A folder bulk ingestion jobs may read (repeatable; adds to server.allowed_roots).
    #[arg(long = "allow-root")]
    pub allow_roots: Vec<PathBuf>,
    /// Largest gRPC message accepted or sent, in bytes [default: server.max_message_bytes].
    #[arg(long)]
    pub max_message_bytes: Option<usize>,
    /// File whose first line is the bearer token clients must send [default:
    /// server.auth_token_file, env RAGD_AUTH_TOKEN_FILE; or the token in RAGD_AUTH_TOKEN].
    #[arg(long)]
    pub auth_token_file: Option<PathBuf>,
    /// PEM certificate chain for TLS [default: server.tls_cert, env RAGD_TLS_CERT].
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS [default: server.tls_key, env RAGD_TLS_KEY].
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve a non-loopback address without a token (trusted networks only).
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Where collections live: `embedded` (the data folder) or `qdrant` (the Qdrant cluster of
    /// [qdrant], shared with other servers) [default: index.backend, env RAGD_BACKEND].
    #[arg(long, value_parser = ["embedded", "qdrant"])]
    pub backend: Option<String>,
    /// gRPC URL of a node of the Qdrant cluster (repeatable; replaces qdrant.urls) [env
    /// RAGD_QDRANT_URLS, comma-separated].
    #[arg(long = "qdrant-url")]
    pub qdrant_urls: Vec<String>,
}

/// Runs the server on a multi-threaded runtime; returns after a graceful shutdown.
pub fn run(mut cfg: Config, args: &ServeArgs) -> anyhow::Result<()> {
    if let Some(addr) = &args.addr {
        cfg.server.addr.clone_from(addr);
    }
    if let Some(addr) = &args.http_addr {
        cfg.server.http_addr.clone_from(addr);
    }
    if let Some(n) = args.max_message_bytes {
        cfg.server.max_message_bytes = n;
    }
    if let Some(f) = &args.auth_token_file {
        cfg.server.auth_token_file = Some(f.clone());
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        cfg.server.tls_cert = Some(cert.clone());
        cfg.server.tls_key = Some(key.clone());
    }
    cfg.server.allow_unauthenticated |= args.allow_unauthenticated;
    match args.backend.as_deref() {
        Some("qdrant") => cfg.index.backend = crate::config::Backend::Qdrant,
        Some(_) => cfg.index.backend = crate::config::Backend::Embedded,
        None => {}
    }
    if !args.qdrant_urls.is_empty() {
        cfg.qdrant.urls.clone_from(&args.qdrant_urls);
    }
    cfg.server
        .allowed_roots
        .extend(args.allow_roots.iter().cloned());
    cfg.validate()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(crate::server::serve(cfg, shutdown_signal()))
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("ragd: shutting down (finishing requests and job batches)");
}
