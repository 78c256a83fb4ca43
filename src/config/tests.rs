//! Unit tests of `config`.

use super::*;

#[test]
fn example_file_matches_defaults() {
    let text = include_str!("../../ragd.example.toml");
    let parsed = Config::from_toml(text, Path::new("ragd.example.toml")).unwrap();
    // The example spells the default folders out for a user whose HOME is /home/me.
    let want = Config {
        data_dir: "/home/me/.local/share/ragd".into(),
        models_dir: "/home/me/.cache/ragd/models".into(),
        ..Config::default()
    };
    assert_eq!(parsed, want);
}

#[test]
fn env_overrides_file_and_unknown_keys_are_errors() {
    let mut cfg = Config::from_toml("[embedder]\nmax_batch = 8\n", Path::new("x")).unwrap();
    assert_eq!(cfg.embedder.max_batch, Some(8));
    cfg.apply_env(|k| (k == "RAGD_DEVICE").then(|| "cuda:1".to_string()))
        .unwrap();
    assert_eq!(cfg.generator.device, "cuda:1");
    assert_eq!(cfg.reader.device, "cuda:1");
    assert_eq!(cfg.reader.model, None, "no reader by default");
    cfg.apply_env(|k| (k == "RAGD_READER").then(|| "/m/reader".to_string()))
        .unwrap();
    assert_eq!(cfg.reader.model, Some(PathBuf::from("/m/reader")));
    assert!(!cfg.reranker.configured(), "no cross-encoder by default");
    cfg.apply_env(|k| (k == "RAGD_RERANKER_KIND").then(|| "llm".to_string()))
        .unwrap();
    assert_eq!(cfg.reranker.kind, RerankerKind::Llm);
    assert!(cfg.reranker.configured(), "llm uses the generator");
    let bad = cfg.apply_env(|k| (k == "RAGD_RERANKER_KIND").then(|| "bm25".to_string()));
    assert!(bad.unwrap_err().to_string().contains("cross-encoder"));
    let file = Config::from_toml("[reranker]\nkind = \"llm\"\n", Path::new("x")).unwrap();
    assert_eq!(file.reranker.kind, RerankerKind::Llm);
    let err = Config::from_toml("[embedder]\nbatch = 8\n", Path::new("c.toml")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("c.toml") && msg.contains("line 2") && msg.contains("batch"),
        "{msg}"
    );
}

#[test]
fn zero_batch_is_rejected() {
    let cfg = Config::from_toml("[embedder]\nmax_batch = 0\n", Path::new("x")).unwrap();
    assert!(matches!(
        cfg.validate(),
        Err(ConfigError::Invalid {
            field: "embedder.max_batch",
            ..
        })
    ));
}

#[test]
fn a_gate_fitted_elsewhere_is_read_and_checked() {
    let cfg = Config::from_toml(
        "[answer.gate]\nbias = -3.5\nweights = [1.0, 2.0, 3.0, 4.0]\nmin_probability = 0.4\n",
        Path::new("x"),
    )
    .unwrap();
    assert_eq!(
        cfg.answer.gate,
        RelevanceGate {
            bias: -3.5,
            weights: [1.0, 2.0, 3.0, 4.0],
            min_probability: 0.4,
        }
    );
    let mut bad = cfg.clone();
    bad.answer.gate.min_probability = 1.5;
    assert!(matches!(
        bad.validate(),
        Err(ConfigError::Invalid {
            field: "answer.gate.min_probability",
            ..
        })
    ));
    bad.answer.gate = RelevanceGate {
        bias: f32::NAN,
        ..RelevanceGate::default()
    };
    assert!(bad.validate().is_err());
    assert!(Config::from_toml("[answer.gate]\nweights = [1.0]\n", Path::new("x")).is_err());
}

#[test]
fn index_backend_sits_beside_maintenance_and_unknown_index_keys_are_errors() {
    let cfg = Config::from_toml(
        "[index]\nbackend = \"qdrant\"\ndump_every_writes = 5\n",
        Path::new("x"),
    )
    .unwrap();
    assert_eq!(cfg.index.backend, Backend::Qdrant);
    assert_eq!(cfg.index.maintenance.dump_every_writes, 5);
    let bad = Config::from_toml("[index]\nbackend = \"qdrant\"\nbogus = 1\n", Path::new("x"));
    assert!(bad.unwrap_err().to_string().contains("bogus"));
    let bad = Config::from_toml("[index]\nbackend = \"cloud\"\n", Path::new("x"));
    assert!(bad.unwrap_err().to_string().contains("cloud"));
    let mut cfg = Config::default();
    cfg.apply_env(|k| (k == "RAGD_BACKEND").then(|| "qdrant".to_string()))
        .unwrap();
    assert_eq!(cfg.index.backend, Backend::Qdrant);
    let bad = cfg.apply_env(|k| (k == "RAGD_BACKEND").then(|| "cloud".to_string()));
    assert!(bad.unwrap_err().to_string().contains("RAGD_BACKEND"));
}

#[test]
fn the_qdrant_table_reads_its_idf_scope_and_ca_and_refuses_an_unknown_scope() {
    use crate::qdrant::IdfScope;
    let cfg = Config::default();
    assert_eq!(cfg.qdrant.idf, IdfScope::Collection);
    assert_eq!(cfg.qdrant.tls_ca, None);
    let cfg = Config::from_toml(
        "[qdrant]\nidf = \"shard\"\nidf_cache_ms = 0\ntls_ca = \"/etc/ca.pem\"\n",
        Path::new("x"),
    )
    .unwrap();
    assert_eq!(cfg.qdrant.idf, IdfScope::Shard);
    assert_eq!(cfg.qdrant.idf_cache_ms, 0);
    assert_eq!(cfg.qdrant.tls_ca.as_deref(), Some(Path::new("/etc/ca.pem")));
    let bad = Config::from_toml("[qdrant]\nidf = \"node\"\n", Path::new("x"));
    assert!(bad.unwrap_err().to_string().contains("node"));
    let mut cfg = Config::default();
    cfg.apply_env(|k| (k == "RAGD_QDRANT_TLS_CA").then(|| "/tmp/ca.pem".to_string()))
        .unwrap();
    assert_eq!(cfg.qdrant.tls_ca.as_deref(), Some(Path::new("/tmp/ca.pem")));
}
