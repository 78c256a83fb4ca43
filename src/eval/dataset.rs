//! Reading BEIR data sets: the one reader `ragd eval`, `ragd bench` and `benches/` share.
//!
//! Layout: `DIR/corpus.jsonl` (`{"_id","title","text"}`), `DIR/queries.jsonl` (`{"_id","text"}`),
//! `DIR/qrels/<split>.tsv` (`query-id  corpus-id  score`, with a header). Every error names the
//! file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::metrics::Qrels;

/// Queries (id → text) and relevance judgements of one split.
pub struct Split {
    /// Query texts by id, for the queries judged in the split.
    pub queries: BTreeMap<String, String>,
    /// Relevant documents per query.
    pub qrels: Qrels,
}

impl Split {
    /// Keeps the first `n` queries (by id) and their judgements only, so that metrics average
    /// over exactly the queries run.
    pub fn keep_first(&mut self, n: usize) {
        self.queries = std::mem::take(&mut self.queries)
            .into_iter()
            .take(n)
            .collect();
        self.qrels.retain(|qid, _| self.queries.contains_key(qid));
    }
}

/// Reads `qrels/<split>.tsv` and the texts of its queries.
pub fn read_split(dir: &Path, split: &str) -> anyhow::Result<Split> {
    let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
    let text = fs_err::read_to_string(&qrels_path)?;
    let mut qrels = Qrels::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let [qid, did, score] = cols[..] else {
            anyhow::bail!(
                "{}:{}: expected 3 tab-separated columns",
                qrels_path.display(),
                i + 1
            );
        };
        let score: i64 = score
            .trim()
            .parse()
            .with_context(|| format!("{}:{}: bad score", qrels_path.display(), i + 1))?;
        if score > 0 {
            qrels
                .entry(qid.to_string())
                .or_default()
                .insert(did.to_string());
        }
    }
    let mut queries = read_queries(dir)?;
    queries.retain(|id, _| qrels.contains_key(id));
    Ok(Split { queries, qrels })
}

/// Every query of `dir/queries.jsonl`, by id.
pub fn read_queries(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut queries = BTreeMap::new();
    for_each_line(&dir.join("queries.jsonl"), usize::MAX, |v| {
        if let (Some(id), Some(t)) = (v["_id"].as_str(), v["text"].as_str()) {
            queries.insert(id.to_string(), t.to_string());
        }
    })?;
    Ok(queries)
}

/// Gold answers of `dir/answers.jsonl` (`{"_id": query id, "answers": [strings]}`), by query id.
pub fn read_answers(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let path = dir.join("answers.jsonl");
    let mut answers = BTreeMap::new();
    for_each_line(&path, usize::MAX, |v| {
        if let (Some(id), Some(list)) = (v["_id"].as_str(), v["answers"].as_array()) {
            let gold: Vec<String> = list
                .iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect();
            if !gold.is_empty() {
                answers.insert(id.to_string(), gold);
            }
        }
    })?;
    anyhow::ensure!(!answers.is_empty(), "no gold answers in {}", path.display());
    Ok(answers)
}

/// The text of every query in a queries.jsonl file, in file order.
pub fn read_query_texts(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut texts = Vec::new();
    for_each_line(path, usize::MAX, |v| {
        if let Some(t) = v["text"].as_str() {
            texts.push(t.to_string());
        }
    })?;
    anyhow::ensure!(!texts.is_empty(), "no queries in {}", path.display());
    Ok(texts)
}

/// Default location of the SciFact corpus, relative to the repository root.
pub fn default_scifact_dir() -> PathBuf {
    std::env::var_os("SCIFACT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/scifact"))
}

/// Reads up to `limit` passages (`title + " " + text`) from a BEIR corpus.jsonl.
pub fn read_passages(path: &Path, limit: usize) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for_each_line(path, limit, |v| {
        let title = v["title"].as_str().unwrap_or("");
        let body = v["text"].as_str().unwrap_or("");
        out.push(format!("{title} {body}").trim().to_string());
    })?;
    Ok(out)
}

/// Calls `f` with each of the first `limit` non-empty lines of a JSON-lines file, parsed (the
/// rest is not parsed).
fn for_each_line(
    path: &Path,
    limit: usize,
    mut f: impl FnMut(&serde_json::Value),
) -> anyhow::Result<()> {
    for (i, line) in fs_err::read_to_string(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .take(limit)
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        f(&v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::{evaluate, Run};

    #[test]
    fn keeping_the_first_queries_keeps_their_judgements_only() {
        let mut split = Split {
            queries: [("q1", "a"), ("q2", "b"), ("q3", "c")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            qrels: ["q1", "q2", "q3"]
                .into_iter()
                .map(|q| (q.to_string(), [format!("d-{q}")].into_iter().collect()))
                .collect(),
        };
        split.keep_first(2);
        assert_eq!(split.queries.keys().collect::<Vec<_>>(), ["q1", "q2"]);
        assert_eq!(split.qrels.keys().collect::<Vec<_>>(), ["q1", "q2"]);
        // A run scored against the kept judgements averages over two queries, not three.
        let run: Run = [("q1", "d-q1"), ("q2", "x")]
            .into_iter()
            .map(|(q, d)| (q.to_string(), vec![d.to_string()]))
            .collect();
        let m = evaluate(&run, &split.qrels);
        assert_eq!(m.queries, 2);
        assert!((m.ndcg_at_10 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_split_reads_its_judged_queries_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("qrels")).unwrap();
        std::fs::write(
            d.join("queries.jsonl"),
            "{\"_id\": \"q1\", \"text\": \"one\"}\n\n{\"_id\": \"q2\", \"text\": \"two\"}\n",
        )
        .unwrap();
        std::fs::write(
            d.join("qrels/test.tsv"),
            "query-id\tcorpus-id\tscore\nq2\td1\t1\nq2\td2\t0\n",
        )
        .unwrap();
        let split = read_split(d, "test").unwrap();
        assert_eq!(split.queries.keys().collect::<Vec<_>>(), ["q2"]);
        assert_eq!(split.qrels["q2"].len(), 1, "score 0 is not relevant");
        assert_eq!(
            read_query_texts(&d.join("queries.jsonl")).unwrap(),
            ["one", "two"]
        );

        std::fs::write(d.join("qrels/bad.tsv"), "h\nq1\td1\n").unwrap();
        let err = read_split(d, "bad").err().unwrap().to_string();
        assert!(err.contains("bad.tsv:2"), "{err}");
        std::fs::write(d.join("queries.jsonl"), "{\"_id\": \"q1\"}\nnot json\n").unwrap();
        let err = format!("{:#}", read_queries(d).err().unwrap());
        assert!(err.contains("queries.jsonl:2"), "{err}");

        std::fs::write(
            d.join("answers.jsonl"),
            "{\"_id\": \"q1\", \"answers\": [\"x\", \"y\"]}\n{\"_id\": \"q2\", \"answers\": []}\n",
        )
        .unwrap();
        let answers = read_answers(d).unwrap();
        assert_eq!(
            answers.len(),
            1,
            "a question without gold answers is left out"
        );
        assert_eq!(answers["q1"], ["x", "y"]);
    }
}
