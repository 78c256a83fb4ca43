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
        "serve",
        "ingest",
        "chunk",
        "search",
        "ask",
        "eval",
        "models",
        "demo",
        "embed",
        "collections",
        "jobs",
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

/// `ragd eval beir` on a four-document BEIR folder, then `ragd eval vectors` on the collection
/// it made: every chunk vector and every query (judged or not) embedded, unit length; then
/// `ragd eval qa` with gold answers.
#[test]
fn eval_beir_then_vectors_on_a_tiny_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let beir = dir.path().join("tiny");
    std::fs::create_dir_all(beir.join("qrels")).unwrap();
    let docs = [
        (
            "d1",
            "Pumps",
            "The XJ-9000-B pump moves water at forty litres a minute.",
        ),
        (
            "d2",
            "Cats",
            "Cats sleep for most of the day and hunt at dusk.",
        ),
        ("d3", "Tea", "Green tea is steeped in water below boiling."),
        (
            "d4",
            "Quantisation",
            "NF4 stores weights in four bits per value.",
        ),
    ];
    let corpus: String = docs
        .iter()
        .map(|(id, title, text)| {
            format!(
                "{}\n",
                serde_json::json!({"_id": id, "title": title, "text": text})
            )
        })
        .collect();
    std::fs::write(beir.join("corpus.jsonl"), corpus).unwrap();
    let queries = [
        ("q1", "which pump moves forty litres"),
        ("q2", "four-bit weight format"),
        ("q3", "when do cats hunt"),
    ];
    let queries: String = queries
        .iter()
        .map(|(id, text)| format!("{}\n", serde_json::json!({"_id": id, "text": text})))
        .collect();
    std::fs::write(beir.join("queries.jsonl"), queries).unwrap();
    std::fs::write(
        beir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td4\t1\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    // `ragd --data-dir DATA eval SUB BEIR ARGS... [PATH]`
    let eval = |sub: &str, args: &[&str], path: Option<&std::path::Path>| {
        let mut cmd = ragd();
        cmd.arg("--data-dir")
            .arg(&data)
            .args(["eval", sub])
            .arg(&beir)
            .args(args);
        if let Some(p) = path {
            cmd.arg(p);
        }
        cmd.output().unwrap()
    };
    let out = eval("beir", &["--split", "test", "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["queries"], 2);
    assert_eq!(report["documents"], 4);
    assert!(report["ndcg_at_10"].as_f64().unwrap() > 0.9, "{report}");

    let vectors = dir.path().join("vectors");
    let out = eval(
        "vectors",
        &["--collection", "beir-tiny", "--out"],
        Some(&vectors),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = index::vecfile::read(&vectors.join("base.f32")).unwrap();
    let queries = index::vecfile::read(&vectors.join("queries.f32")).unwrap();
    assert_eq!(
        base.len(),
        report["chunks_ingested"].as_u64().unwrap() as usize
    );
    assert_eq!(queries.len(), 3, "every query, judged or not");
    for v in base.iter().chain(&queries) {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    // An unknown collection is a clear error.
    let out = eval(
        "vectors",
        &["--collection", "nope", "--out"],
        Some(&vectors),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope"), "{err}");

    // `ragd eval qa` answers the judged questions that have gold answers, on the same
    // collection (its documents are not ingested twice), and scores them row by row.
    std::fs::write(
        beir.join("answers.jsonl"),
        "{\"_id\": \"q1\", \"answers\": [\"XJ-9000-B\"]}\n\
         {\"_id\": \"q2\", \"answers\": [\"NF4\"]}\n",
    )
    .unwrap();
    let rows = dir.path().join("rows.jsonl");
    let rows_arg = rows.to_str().unwrap();
    let out = eval(
        "qa",
        &["--json", "--max-tokens", "24", "--rows", rows_arg],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let qa: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(qa["questions"], 2, "{qa}");
    assert_eq!(qa["gold_in_sources"], 1.0, "retrieval finds both: {qa}");
    let share = |k: &str| qa[k].as_f64().unwrap();
    assert!(share("exact_match") <= share("contains_gold"), "{qa}");
    assert!(share("gold_in_cited") <= share("gold_in_sources"), "{qa}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&rows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["q1", "q2"]);
    assert_eq!(rows[1]["gold"][0], "NF4");
    for r in &rows {
        assert!(r["gold_in_sources"].as_bool().unwrap(), "{r}");
        let f1 = r["f1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f1), "{r}");
        assert!(
            !r["answer"].as_str().unwrap().contains("[1]"),
            "markers removed: {r}"
        );
    }
    // A folder without answers.jsonl is named in the error.
    std::fs::remove_file(beir.join("answers.jsonl")).unwrap();
    let out = eval("qa", &["--json"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answers.jsonl"), "{err}");
}

/// `ragd ingest` streams a JSONL corpus a line at a time: a corpus larger than
/// `ingest.max_file_bytes` loads (it used to be skipped whole with one line on stderr, and the
/// command exited 0 having ingested nothing); the one line over `ingest.max_line_bytes` is named
/// with its line number, everything else is ingested, and the exit status says that something
/// failed.
#[test]
fn ingest_streams_a_large_jsonl_and_names_the_line_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut corpus = String::new();
    for i in 1..=60 {
        let text = if i == 31 {
            "An oversized line. ".repeat(200)
        } else {
            format!("Note {i} is about pump part XJ-{i}00 and its seal.")
        };
        corpus.push_str(&serde_json::json!({"_id": format!("n{i}"), "text": text}).to_string());
        corpus.push('\n');
    }
    assert!(corpus.len() > 8000);
    let path = dir.path().join("notes.jsonl");
    std::fs::write(&path, &corpus).unwrap();
    let config = dir.path().join("ragd.toml");
    std::fs::write(
        &config,
        "[ingest]\nmax_file_bytes = 2048\nmax_line_bytes = 1024\n",
    )
    .unwrap();
    let out = ragd()
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["ingest", "--collection", "notes", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a line failed: {stderr}");
    assert!(stderr.contains("1 of the inputs failed"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a summary");
    assert_eq!(summary["added"], 59, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    let error = summary["errors"][0][1].as_str().unwrap();
    assert!(
        error.contains("notes.jsonl:31:") && error.contains("over the limit of 1024 bytes"),
        "{error}"
    );
}

/// `ragd eval gate` measures the relevance gate on a real collection (the bundled knowledge
/// base, its 24 questions against the 60 bundled off-topic ones) and `ragd eval gate-fit` fits a
/// gate to the rows it wrote.
#[test]
fn eval_gate_measures_the_relevance_gate_and_gate_fit_fits_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = env!("CARGO_MANIFEST_DIR");
    let out = ragd()
        .arg("--data-dir")
        .arg(&data)
        .args([
            "ingest",
            "--collection",
            "kb",
            &format!("{root}/examples/kb"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = dir.path().join("rows.jsonl");
    let questions = format!("{root}/examples/demo-questions.txt");
    let out = ragd()
        .arg("--data-dir")
        .arg(&data)
        .args([
            "eval",
            "gate",
            "--collection",
            "kb",
            "--questions",
            &questions,
        ])
        .args(["--json", "--rows"])
        .arg(&rows)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["answerable"].as_u64(), report["offtopic"].as_u64()),
        (Some(24), Some(60))
    );
    // The default gate (fitted on SciFact and squad-qa) answered 22 of these 24 questions and
    // refused every off-topic one here (BENCHMARKS.md).
    let share = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    assert!(share(&report, "answerable_kept") >= 0.85, "{report}");
    assert!(share(&report, "offtopic_refused") >= 0.95, "{report}");
    let written = std::fs::read_to_string(&rows).unwrap();
    assert_eq!(written.lines().count(), 84);

    // Fitted to these rows, a gate keeps every answerable question (97.5% of 24 drops none).
    let out = ragd()
        .args(["eval", "gate-fit", "--json"])
        .arg(&rows)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fitted = &fit["files"][0]["report"];
    assert_eq!(share(fitted, "answerable_kept"), 1.0, "{fit}");
    assert!(share(fitted, "offtopic_refused") >= 0.9, "{fit}");
    let p = fit["gate"]["min_probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{fit}");

    // A row that is not one names its file and line.
    std::fs::write(
        &rows,
        format!(
            "{}\n{{\"answerable\": true}}\n",
            written.lines().next().unwrap()
        ),
    )
    .unwrap();
    let out = ragd()
        .args(["eval", "gate-fit"])
        .arg(&rows)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rows.jsonl:2: not a gate row"), "{stderr}");
}
