//! The `ragd` binary's command line: subcommands, models listing, config errors.

use std::process::Command;

fn ragd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ragd"))
}

#[test]
fn help_lists_every_subcommand() {
    let out = ragd().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "serve", "ingest", "chunk", "search", "ask", "eval", "models", "demo", "embed",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "`{cmd}` missing from:\n{help}"
        );
    }
}

#[test]
fn models_list_json_names_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let out = ragd()
        .args(["--models-dir"])
        .arg(dir.path())
        .args(["models", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|m| m["state"] == "missing"), "{lines:?}");
    assert!(lines
        .iter()
        .any(|m| m["name"] == "all-MiniLM-L6-v2" && m["default"] == true));
}

#[test]
fn bad_config_file_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ragd.toml");
    std::fs::write(&cfg, "[embedder]\nmax_batch = 8\nbatch = 3\n").unwrap();
    let out = ragd()
        .arg("--config")
        .arg(&cfg)
        .args(["models", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("ragd.toml") && err.contains("line 3") && err.contains("batch"),
        "{err}"
    );
}

#[test]
fn unknown_model_path_is_a_clear_error() {
    let out = ragd()
        .env("RAGD_EMBEDDER", "/nonexistent/model")
        .args(["embed", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown model `/nonexistent/model`"), "{err}");
}
