//! The client side of the gRPC API: connecting to a ragd server with its TLS and bearer-token
//! settings. The `--server` commands and `ragd bench search --server` use it.

use anyhow::Context;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::pb::rag_client::RagClient;
use super::security::{self, BearerToken};

/// A client of the `Rag` service that sends the bearer token, if one is set.
pub type Client = RagClient<InterceptedService<Channel, BearerToken>>;

/// Connects to `url` (`http://host:port`, or `https://` for TLS; a bare `host:port` gets
/// `http://`). The bearer token comes from `RAGD_AUTH_TOKEN` or the file named by
/// `RAGD_AUTH_TOKEN_FILE`; `https` trusts the system roots plus the PEM CA file named by
/// `RAGD_TLS_CA` (for a self-signed server certificate), and presents the client certificate
/// named by `RAGD_TLS_CLIENT_CERT` with its key `RAGD_TLS_CLIENT_KEY` when both are set (for a
/// server that requires one: mutual TLS).
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    connect_with(url, |k| std::env::var(k).ok()).await
}

/// [`connect`] with the environment given.
pub async fn connect_with(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Client> {
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid server address `{url}`"))?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = env(security::TLS_CA_ENV) {
            let pem =
                fs_err::read(&ca).with_context(|| format!("reading {}", security::TLS_CA_ENV))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        match (
            env(security::TLS_CLIENT_CERT_ENV),
            env(security::TLS_CLIENT_KEY_ENV),
        ) {
            (Some(cert), Some(key)) => {
                let read = |path: &str, var: &str| {
                    fs_err::read(path).with_context(|| format!("reading {var}"))
                };
                let cert = read(&cert, security::TLS_CLIENT_CERT_ENV)?;
                let key = read(&key, security::TLS_CLIENT_KEY_ENV)?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            _ => anyhow::bail!(
                "{} and {} go together: set both or neither",
                security::TLS_CLIENT_CERT_ENV,
                security::TLS_CLIENT_KEY_ENV
            ),
        }
        endpoint = endpoint.tls_config(tls).context("TLS settings")?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let token = security::client_token(&env)?;
    let bearer = BearerToken::new(token.as_deref())?;
    Ok(RagClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}
