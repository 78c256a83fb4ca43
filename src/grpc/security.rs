//! Access control and transport security for `ragd serve` and the `--server` clients.
//!
//! - **Bearer token.** When a token is configured, every RPC except `grpc.health.v1.Health`
//!   (which load balancers probe without credentials) must carry
//!   `authorization: Bearer <token>`; anything else is answered UNAUTHENTICATED. The token
//!   comes from `RAGD_AUTH_TOKEN` (the token itself) or a file (`server.auth_token_file`,
//!   `RAGD_AUTH_TOKEN_FILE`, `--auth-token-file`), never from the TOML file itself, so configs
//!   can be shared without leaking it. Only its SHA-256 digest is kept in memory; a presented
//!   token is hashed and the two digests compared in constant time ([`subtle`]), so neither the
//!   content nor the length of the secret leaks through response timing.
//! - **TLS** (rustls, via tonic) when `server.tls_cert` and `server.tls_key` name PEM files;
//!   `server.tls_client_ca` additionally requires client certificates signed by that CA.
//! - **Loopback by default.** Without a token the server only accepts connections on a
//!   loopback address and says so; binding elsewhere without a token is refused unless
//!   `server.allow_unauthenticated` is set. A token sent over plain TCP to a non-loopback
//!   address is readable on the wire, so that combination is logged as a warning.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::config::ServerConfig;

/// Environment variable holding the token itself.
pub const TOKEN_ENV: &str = "RAGD_AUTH_TOKEN";
/// Environment variable naming a file that holds the token.
pub const TOKEN_FILE_ENV: &str = "RAGD_AUTH_TOKEN_FILE";
/// Environment variable naming a PEM file of CA certificates a client trusts (besides the
/// system roots) for `https://` servers.
pub const TLS_CA_ENV: &str = "RAGD_TLS_CA";
/// Environment variable naming the PEM certificate (chain) a client presents, for servers that
/// require client certificates (`server.tls_client_ca`, mutual TLS).
pub const TLS_CLIENT_CERT_ENV: &str = "RAGD_TLS_CLIENT_CERT";
/// Environment variable naming the PEM private key of [`TLS_CLIENT_CERT_ENV`].
pub const TLS_CLIENT_KEY_ENV: &str = "RAGD_TLS_CLIENT_KEY";
/// Shortest token accepted: a guessable token is no access control.
pub const MIN_TOKEN_LEN: usize = 16;

/// A configured bearer token, kept only as its SHA-256 digest.
pub struct AuthToken {
    digest: [u8; 32],
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

impl AuthToken {
    /// Checks and keeps `token` (surrounding whitespace, e.g. a file's final newline, is
    /// ignored). It must be at least [`MIN_TOKEN_LEN`] visible ASCII characters, the characters
    /// an HTTP/2 header value can carry unchanged.
    pub fn new(token: &str) -> anyhow::Result<Self> {
        let token = token.trim();
        if token.len() < MIN_TOKEN_LEN {
            bail!(
                "the auth token is {} characters; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
                token.len()
            );
        }
        if let Some(bad) = token.chars().find(|c| !c.is_ascii_graphic()) {
            bail!("the auth token contains {bad:?}; use visible ASCII characters only");
        }
        Ok(Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Reads a token file (its first line), naming the file in any error.
fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text = fs_err::read_to_string(path).context("reading the auth token file")?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.trim().is_empty() {
        bail!("auth token file {} is empty", path.display());
    }
    Ok(line)
}

/// The token the server requires, from `RAGD_AUTH_TOKEN` or `server.auth_token_file` (which
/// `RAGD_AUTH_TOKEN_FILE` and `--auth-token-file` set); `None` when none is configured. Both a
/// token and a file is an error, so that it is clear which one applies.
pub fn server_token(
    server: &ServerConfig,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<AuthToken>> {
    let token = match (env(TOKEN_ENV), server.auth_token_file.clone()) {
        (Some(_), Some(path)) => bail!(
            "both {TOKEN_ENV} and an auth token file ({}) are set; use one",
            path.display()
        ),
        (Some(token), None) => token,
        (None, Some(path)) => read_token_file(&path)?,
        (None, None) => return Ok(None),
    };
    AuthToken::new(&token).map(Some)
}

/// The token a `--server` client sends: `RAGD_AUTH_TOKEN`, else the file named by
/// `RAGD_AUTH_TOKEN_FILE`.
pub fn client_token(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<String>> {
    if let Some(token) = env(TOKEN_ENV) {
        return Ok(Some(token.trim().to_string()));
    }
    match env(TOKEN_FILE_ENV) {
        Some(path) => Ok(Some(read_token_file(Path::new(&path))?.trim().to_string())),
        None => Ok(None),
    }
}

/// Server-side check of the `authorization` header; health is not wrapped by it.
#[derive(Clone, Debug)]
pub struct Authenticator {
    token: Option<Arc<AuthToken>>,
}

impl Authenticator {
    /// Checks requests against `token`; `None` lets every request through.
    pub fn new(token: Option<AuthToken>) -> Self {
        Self {
            token: token.map(Arc::new),
        }
    }

    /// Whether a token is required.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }
}

impl Authenticator {
    /// Checks the value of a request's `authorization` header (gRPC metadata or HTTP header);
    /// `Err` says why it is refused.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        peer: Option<SocketAddr>,
    ) -> Result<(), &'static str> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let Some(value) = authorization else {
            return Err("missing credentials: send the header `authorization: Bearer <token>`");
        };
        let presented = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "));
        match presented {
            Some(t) if token.verify(t) => Ok(()),
            Some(_) => {
                tracing::warn!(?peer, "rejected a request with a wrong bearer token");
                Err("invalid bearer token")
            }
            None => Err("the authorization header must be `Bearer <token>`"),
        }
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        match self.check(header, request.remote_addr()) {
            Ok(()) => Ok(request),
            Err(why) => Err(Status::unauthenticated(why)),
        }
    }
}

/// Client side: adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone, Debug, Default)]
pub struct BearerToken {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl BearerToken {
    /// Sends `token`, or nothing with `None`.
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let header = token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {}", t.trim()))
                    .context("the auth token is not a valid header value (visible ASCII only)")
            })
            .transpose()?;
        Ok(Self { header })
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert("authorization", h.clone());
        }
        Ok(request)
    }
}

/// The server's TLS settings from `server.tls_cert` / `tls_key` (PEM), plus
/// `tls_client_ca` for client certificates; `None` when no certificate is configured.
pub fn server_tls(server: &ServerConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (cert, key) = match (&server.tls_cert, &server.tls_key) {
        (None, None) => {
            if server.tls_client_ca.is_some() {
                bail!("server.tls_client_ca needs server.tls_cert and server.tls_key");
            }
            return Ok(None);
        }
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) => bail!("server.tls_cert is set but server.tls_key is not"),
        (None, Some(_)) => bail!("server.tls_key is set but server.tls_cert is not"),
    };
    let cert_pem = read_pem(cert, "CERTIFICATE", "server.tls_cert")?;
    let key_pem = read_pem(key, "PRIVATE KEY", "server.tls_key")?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem));
    if let Some(ca) = &server.tls_client_ca {
        let ca_pem = read_pem(ca, "CERTIFICATE", "server.tls_client_ca")?;
        tls = tls.client_ca_root(Certificate::from_pem(ca_pem));
    }
    Ok(Some(tls))
}

/// Reads a PEM file and checks it holds a block whose label contains `label`, so that a
/// swapped cert/key or a DER file is reported by name at startup, not at the first handshake.
pub(crate) fn read_pem(path: &Path, label: &str, field: &str) -> anyhow::Result<Vec<u8>> {
    let pem = fs_err::read(path).with_context(|| format!("reading {field}"))?;
    let text = String::from_utf8_lossy(&pem);
    let found = text.lines().any(|l| {
        l.strip_prefix("-----BEGIN ")
            .is_some_and(|rest| rest.contains(label))
    });
    if !found {
        bail!("{field} ({}) holds no PEM `{label}` block", path.display());
    }
    Ok(pem)
}

/// Decides whether `addr` may be served with the given protection, and what to tell the
/// operator about it: `Ok(Some(message))` to print, `Err` to refuse.
pub fn exposure_check(
    addr: SocketAddr,
    token: bool,
    tls: bool,
    allow_unauthenticated: bool,
) -> anyhow::Result<Option<String>> {
    let loopback = addr.ip().is_loopback();
    Ok(match (token, loopback) {
        (false, true) => Some(format!(
            "no auth token configured: serving on loopback only ({addr}); set {TOKEN_ENV} or \
             server.auth_token_file to accept other hosts"
        )),
        (false, false) if !allow_unauthenticated => bail!(
            "refusing to serve on {addr} without authentication: anyone who can reach it could \
             read and change every collection. Set {TOKEN_ENV} or server.auth_token_file (and \
             server.tls_cert/tls_key), bind a loopback address, or set \
             server.allow_unauthenticated = true (--allow-unauthenticated) if the network is \
             trusted"
        ),
        (false, false) => Some(format!(
            "WARNING: serving on {addr} without authentication (server.allow_unauthenticated)"
        )),
        (true, false) if !tls => Some(format!(
            "WARNING: serving on {addr} with a bearer token but without TLS: the token crosses \
             the network in clear text; set server.tls_cert and server.tls_key"
        )),
        (true, _) => None,
    })
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    const TOKEN: &str = "0123456789abcdef-secret";

    fn call(auth: &mut Authenticator, header: Option<&str>) -> Result<(), tonic::Code> {
        let mut req = Request::new(());
        if let Some(h) = header {
            req.metadata_mut()
                .insert("authorization", h.parse().expect("ascii"));
        }
        auth.call(req).map(|_| ()).map_err(|s| s.code())
    }

    #[test]
    fn token_is_checked() {
        let mut auth = Authenticator::new(Some(AuthToken::new(TOKEN).unwrap()));
        assert!(auth.enabled());
        assert_eq!(call(&mut auth, Some(&format!("Bearer {TOKEN}"))), Ok(()));
        assert_eq!(call(&mut auth, Some(&format!("bearer {TOKEN}"))), Ok(()));
        let unauth = Err(tonic::Code::Unauthenticated);
        assert_eq!(call(&mut auth, None), unauth);
        assert_eq!(call(&mut auth, Some(TOKEN)), unauth);
        assert_eq!(call(&mut auth, Some("Bearer ")), unauth);
        assert_eq!(call(&mut auth, Some(&format!("Bearer {TOKEN}x"))), unauth);
        assert_eq!(
            call(&mut auth, Some(&format!("Bearer {}", &TOKEN[1..]))),
            unauth
        );
        assert_eq!(call(&mut auth, Some(&format!("Basic {TOKEN}"))), unauth);
        let mut open = Authenticator::new(None);
        assert!(!open.enabled());
        assert_eq!(call(&mut open, None), Ok(()));
    }

    #[test]
    fn weak_or_odd_tokens_are_refused() {
        assert!(AuthToken::new("short").is_err());
        assert!(AuthToken::new("  0123456789abcdef\n").is_ok());
        assert!(AuthToken::new("0123456789abcdef ghij").is_err());
        assert!(AuthToken::new("0123456789abcdéf").is_err());
        assert_eq!(
            format!("{:?}", AuthToken::new(TOKEN).unwrap()),
            "AuthToken(<redacted>)"
        );
    }

    #[test]
    fn token_sources() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
        let mut server = ServerConfig::default();
        assert!(server_token(&server, |_| None).unwrap().is_none());
        let env_token = |k: &str| (k == TOKEN_ENV).then(|| TOKEN.to_string());
        assert!(server_token(&server, env_token)
            .unwrap()
            .unwrap()
            .verify(TOKEN.as_bytes()));
        server.auth_token_file = Some(file.clone());
        assert!(server_token(&server, |_| None)
            .unwrap()
            .unwrap()
            .verify(TOKEN.as_bytes()));
        let both = server_token(&server, env_token).unwrap_err().to_string();
        assert!(both.contains("use one"), "{both}");
        std::fs::write(&file, "\n").unwrap();
        let empty = server_token(&server, |_| None).unwrap_err().to_string();
        assert!(empty.contains("empty"), "{empty}");
        server.auth_token_file = Some(dir.path().join("missing"));
        let missing = format!("{:#}", server_token(&server, |_| None).unwrap_err());
        assert!(missing.contains("missing"), "{missing}");

        let f = file.display().to_string();
        std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
        let from_file = |k: &str| (k == TOKEN_FILE_ENV).then(|| f.clone());
        assert_eq!(client_token(from_file).unwrap().as_deref(), Some(TOKEN));
        assert_eq!(client_token(|_| None).unwrap(), None);
    }

    #[test]
    fn exposure() {
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        let says = exposure_check(lo, false, false, false).unwrap().unwrap();
        assert!(says.contains("loopback only"), "{says}");
        let refused = exposure_check(any, false, false, false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("refusing"), "{refused}");
        assert!(exposure_check(any, false, false, true)
            .unwrap()
            .unwrap()
            .contains("WARNING"));
        assert!(exposure_check(any, true, false, false)
            .unwrap()
            .unwrap()
            .contains("clear text"));
        assert_eq!(exposure_check(any, true, true, false).unwrap(), None);
        assert_eq!(exposure_check(lo, true, false, false).unwrap(), None);
    }

    #[test]
    fn tls_settings_are_checked_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = ServerConfig::default();
        assert!(server_tls(&server).unwrap().is_none());
        server.tls_cert = Some(dir.path().join("cert.pem"));
        assert!(server_tls(&server)
            .unwrap_err()
            .to_string()
            .contains("tls_key"));
        let key = dir.path().join("key.pem");
        std::fs::write(dir.path().join("cert.pem"), "not pem").unwrap();
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        server.tls_key = Some(key);
        let e = server_tls(&server).unwrap_err().to_string();
        assert!(
            e.contains("server.tls_cert") && e.contains("CERTIFICATE"),
            "{e}"
        );
    }
}
