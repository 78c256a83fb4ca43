//! Access control and TLS: a server with a bearer token and a self-signed certificate, reached
//! by the CLI's own client, by a client without or with a wrong token, by a plain-text client,
//! and by one that does not trust the certificate; health stays open, reflection does not.
//! Also the binary: `ragd serve` refuses a non-loopback address without a token, and serves
//! TLS + token end to end to `ragd ingest/search --server https://…`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ragd::grpc::pb;
use ragd::grpc::security::{
    AuthToken, Authenticator, TLS_CA_ENV, TLS_CLIENT_CERT_ENV, TLS_CLIENT_KEY_ENV, TOKEN_ENV,
    TOKEN_FILE_ENV,
};
use ragd::grpc::Security;
use ragd::state::AppState;
use tokio::sync::oneshot;
use tonic::transport::{Channel, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::Code;

use crate::common::{config, free_port, shared_embedder};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A self-signed certificate for `localhost`, written as PEM files under `dir`.
struct Pki {
    cert: PathBuf,
    key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    Pki { cert, key }
}

fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_and_tls_guard_every_rpc_but_health() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut cfg = config();
    cfg.data_dir = dir.path().join("data");
    let state = AppState::new(cfg, shared_embedder(), None).unwrap();
    let security = Security {
        auth: Authenticator::new(Some(AuthToken::new(TOKEN).unwrap())),
        tls: Some(ServerTlsConfig::new().identity(Identity::from_pem(
            std::fs::read(&pki.cert).unwrap(),
            std::fs::read(&pki.key).unwrap(),
        ))),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ragd::grpc::serve_with(state, listener, security, async {
        let _ = stopped.await;
    }));
    let url = format!("https://localhost:{port}");
    let ca = pki.cert.display().to_string();

    // The CLI's client with the token and the CA: works.
    let mut good = ragd::grpc::client::connect_with(
        &url,
        env_of(vec![(TOKEN_ENV, TOKEN.into()), (TLS_CA_ENV, ca.clone())]),
    )
    .await
    .unwrap();
    good.create_collection(pb::CreateCollectionRequest {
        name: "secure".into(),
    })
    .await
    .unwrap();
    let listed = good
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.collections.len(), 1);

    // No token, a wrong token, a token one character short: UNAUTHENTICATED, and nothing
    // the call asked for happens.
    for token in [None, Some("test-token-0123456789abcdeX"), Some(&TOKEN[1..])] {
        let mut env = vec![(TLS_CA_ENV, ca.clone())];
        if let Some(t) = token {
            env.push((TOKEN_ENV, t.to_string()));
        }
        let mut c = ragd::grpc::client::connect_with(&url, env_of(env))
            .await
            .unwrap();
        let denied = c
            .delete_collection(pb::DeleteCollectionRequest {
                name: "secure".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::Unauthenticated, "{token:?}: {denied}");
    }
    let still = good
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.collections.len(), 1, "denied calls changed nothing");

    // A TLS channel without credentials: health answers, reflection does not.
    let tls = ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(&pki.cert).unwrap(),
        ))
        .domain_name("localhost");
    let channel = Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    crate::common::assert_serving(channel.clone()).await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let refused = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");

    // Plain text to the TLS port, and TLS without trusting the self-signed certificate: no
    // call gets through.
    let plain = ragd::grpc::client::connect_with(
        &format!("http://localhost:{port}"),
        env_of(vec![(TOKEN_ENV, TOKEN.into())]),
    )
    .await;
    if let Ok(mut c) = plain {
        let e = c
            .list_collections(pb::ListCollectionsRequest {})
            .await
            .unwrap_err();
        assert_ne!(e.code(), Code::Ok);
    }
    let untrusted =
        ragd::grpc::client::connect_with(&url, env_of(vec![(TOKEN_ENV, TOKEN.into())])).await;
    assert!(untrusted.is_err(), "an untrusted certificate must fail");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Without a token, a non-loopback address is refused at once (before any model loads).
#[test]
fn serve_refuses_an_open_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ragd"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--addr", "0.0.0.0:0"])
        .env_remove(TOKEN_ENV)
        .env_remove(TOKEN_FILE_ENV)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve on 0.0.0.0:0 without authentication"),
        "{err}"
    );
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "short\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ragd"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--auth-token-file"])
        .arg(&token_file)
        .env_remove(TOKEN_ENV)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 16"), "{err}");
}

/// The binary end to end with a token file and TLS: ingest and search through
/// `--server https://localhost:PORT`; the same search without the token is refused.
#[cfg(unix)]
#[test]
fn cli_over_tls_with_a_token() {
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let port = free_port();
    let ragd = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ragd"));
        c.arg("--data-dir").arg(dir.path().join("data"));
        c.env_remove(TOKEN_ENV).env_remove(TOKEN_FILE_ENV);
        c
    };
    let server = ragd()
        .args([
            "serve",
            "--http-addr",
            "off",
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--auth-token-file")
        .arg(&token_file)
        .arg("--tls-cert")
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.key)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (server, serving) = started(server);
    assert!(serving.contains("https://127.0.0.1:"), "{serving}");

    let url = format!("https://localhost:{port}");
    let client = |with_token: bool| {
        let mut c = ragd();
        c.env(TLS_CA_ENV, &pki.cert);
        if with_token {
            c.env(TOKEN_FILE_ENV, &token_file);
        }
        c
    };
    let kb = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    let out = client(true)
        .args(["ingest", "--server", &url, "--collection", "kb", "--json"])
        .arg(&kb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let search = |with_token: bool| {
        client(with_token)
            .args([
                "search",
                "--server",
                &url,
                "--collection",
                "kb",
                "--json",
                "-k",
                "1",
            ])
            .arg("Which shaft seal fits an XJ-9000 pump built in 2021?")
            .output()
            .unwrap()
    };
    let out = search(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["hits"][0]["doc_id"], "parts-catalog.md", "{found}");
    let out = search(false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing credentials"), "{err}");
    drop(server);
}

/// A `ragd serve` child, killed when dropped.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a spawned `ragd serve` (stderr piped) to log "serving gRPC on http…"; returns it and the line.
fn started(mut server: std::process::Child) -> (Kill, String) {
    let stderr = server.stderr.take().unwrap();
    let server = Kill(server);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("server did not start");
        if line.contains("serving gRPC on http") {
            return (server, line);
        }
    }
}

/// A CA and a client certificate it signed, as PEM files under `dir` named after `name`.
fn client_pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};
    let ca = crate::common::test_ca(name);
    let mut params = CertificateParams::new(vec![format!("{name}-client")]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-client.pem")),
        dir.join(format!("{name}-client.key")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// Mutual TLS end to end with the binaries: `ragd serve` configured with
/// `server.tls_client_ca` serves `ragd ingest/search --server https://…` presenting a client
/// certificate that CA signed (`RAGD_TLS_CLIENT_CERT`/`RAGD_TLS_CLIENT_KEY`), and refuses the
/// same commands with no client certificate or with one another CA signed.
#[cfg(unix)]
#[test]
fn mutual_tls_admits_only_clients_with_a_certificate_from_the_configured_ca() {
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (ca, cert, key) = client_pki(dir.path(), "trusted");
    let (_, rogue_cert, rogue_key) = client_pki(dir.path(), "rogue");
    let config = dir.path().join("ragd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ntls_cert = {:?}\ntls_key = {:?}\ntls_client_ca = {:?}\n",
            pki.cert, pki.key, ca
        ),
    )
    .unwrap();
    let port = free_port();
    let ragd = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ragd"));
        c.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        c.env_remove(TOKEN_ENV).env_remove(TOKEN_FILE_ENV);
        c
    };
    let (server, serving) = started(
        ragd()
            .args([
                "serve",
                "--http-addr",
                "off",
                "--addr",
                &format!("127.0.0.1:{port}"),
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(serving.contains("https://127.0.0.1:"), "{serving}");
    let url = format!("https://localhost:{port}");
    let kb = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kb");
    let ingest = |identity: Option<(&Path, &Path)>| {
        let mut c = ragd();
        c.env(TLS_CA_ENV, &pki.cert)
            .env_remove(TLS_CLIENT_CERT_ENV)
            .env_remove(TLS_CLIENT_KEY_ENV);
        if let Some((cert, key)) = identity {
            c.env(TLS_CLIENT_CERT_ENV, cert)
                .env(TLS_CLIENT_KEY_ENV, key);
        }
        c.args(["ingest", "--server", &url, "--collection", "kb", "--json"])
            .arg(&kb)
            .output()
            .unwrap()
    };
    let out = ingest(Some((&cert, &key)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["added"], 6, "{summary}");
    for (what, identity) in [
        ("no client certificate", None),
        (
            "a certificate from another CA",
            Some((rogue_cert.as_path(), rogue_key.as_path())),
        ),
    ] {
        let out = ingest(identity);
        assert!(!out.status.success(), "{what} must be refused");
        assert!(out.stdout.is_empty(), "{what}: nothing was ingested");
    }
    // Half an identity is a clear client-side error.
    let out = ragd()
        .env(TLS_CA_ENV, &pki.cert)
        .env(TLS_CLIENT_CERT_ENV, &cert)
        .env_remove(TLS_CLIENT_KEY_ENV)
        .args(["search", "--server", &url, "--collection", "kb", "seal"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("both or neither"),
        "{err}"
    );
    drop(server);
}
