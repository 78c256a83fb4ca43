//! The tantivy BM25 index of a collection.
//!
//! One tantivy document per chunk, with fields `chunk_id` (u64, indexed + fast + stored: the
//! delete term and the result id), `doc_id`, `collection` (raw strings), `title` and `text`
//! (analysed by the collection's analyzer, see [`crate::config::Bm25Analyzer`]) and `meta` (raw
//! `key\u{1f}value` terms, one per metadata pair, for filters). Texts live in sled, not here.
//!
//! [`SparseIndex`] is the shared, read-side handle; [`SparseWriter`] wraps tantivy's
//! `IndexWriter` and is owned by the collection's [`crate::IndexWriter`]. Every commit carries a
//! payload `{"seq": n}`: the last sequence number whose effects it contains. Recovery reads it
//! back with [`SparseIndex::committed_seq`].

mod cjk;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, STRING,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

pub use cjk::{is_cjk, CjkTokenizer};

use crate::config::{Bm25Analyzer, Bm25Config};
use crate::meta::{StoredChunk, StoredDoc};
use crate::types::{ChunkId, Filter, ScoredChunk, Seq};
use crate::{IndexError, Result};

const ENGLISH: &str = "ragd_english";
const CJK: &str = "ragd_cjk";
const MULTILINGUAL: &str = "ragd_multilingual";
/// Weight of a title match relative to a body match when the text field holds the chunk alone
/// (collections created before `title_in_text`). A query term scores `BM25_text(t) +
/// TITLE_BOOST · BM25_title(t)`; every chunk of a document carries its title, and with equal
/// weights the short title field (high length-normalised tf) dominated. Chosen on the SciFact
/// train split (nDCG@10 of chunk-level BM25: 1.0 → 0.658, 0.7 → 0.674, 0.5 → 0.682, 0.4 →
/// 0.685, 0.3 → 0.685, title ignored → 0.670); see BENCHMARKS.md.
pub const TITLE_BOOST: f32 = 0.4;

/// The title field's weight when the text field also holds the title (`title_in_text`, the
/// default): the title's terms then count in the chunk's own term frequencies and length, as in
/// whole-document BM25 over "title + text", and the separate field only adds a little. Chosen on
/// the SciFact train split (BM25 nDCG@10: 0 → 0.696, 0.1 → 0.698, 0.2 → 0.696, 0.6 → 0.674;
/// the old layout's best was 0.685); see BENCHMARKS.md.
pub const TITLE_BOOST_WITH_TITLE_IN_TEXT: f32 = 0.1;

/// Tokens longer than this (in bytes) are dropped by both analyzers.
const MAX_TOKEN_BYTES: usize = 64;

/// Builds the analyzer for `kind`.
pub fn analyzer(kind: Bm25Analyzer) -> TextAnalyzer {
    match kind {
        Bm25Analyzer::English => english_filters(TextAnalyzer::builder(SimpleTokenizer::default())),
        Bm25Analyzer::Cjk => TextAnalyzer::builder(CjkTokenizer)
            .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
            .filter(LowerCaser)
            .build(),
        // The English stop-word list and the Snowball stemmer leave CJK bigrams unchanged.
        Bm25Analyzer::Multilingual => english_filters(TextAnalyzer::builder(CjkTokenizer)),
    }
}

/// The terms `kind` makes of `text`, in order: what BM25 would index or search for.
pub fn terms(kind: Bm25Analyzer, text: &str) -> Vec<String> {
    located_terms(kind, text)
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// [`terms`] with the byte range of `text` each one was made from.
pub fn located_terms(kind: Bm25Analyzer, text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut analyzer = analyzer(kind);
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        let t = stream.token();
        out.push((t.text.clone(), t.offset_from..t.offset_to));
    }
    out
}

/// Length limit, lower-casing, English stop words and stemming after `tokenizer`.
fn english_filters<T: tantivy::tokenizer::Tokenizer>(
    tokenizer: tantivy::tokenizer::TextAnalyzerBuilder<T>,
) -> TextAnalyzer {
    let builder = tokenizer
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .dynamic();
    let builder = match StopWordFilter::new(Language::English) {
        Some(stop) => builder.filter_dynamic(stop),
        None => builder,
    };
    builder
        .filter_dynamic(Stemmer::new(Language::English))
        .build()
}

fn tokenizer_name(kind: Bm25Analyzer) -> &'static str {
    match kind {
        Bm25Analyzer::English => ENGLISH,
        Bm25Analyzer::Cjk => CJK,
        Bm25Analyzer::Multilingual => MULTILINGUAL,
    }
}

/// The schema's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Chunk id (u64).
    pub chunk_id: Field,
    /// Document id (raw).
    pub doc_id: Field,
    /// Collection name (raw).
    pub collection: Field,
    /// Title (analysed).
    pub title: Field,
    /// Chunk text (analysed).
    pub text: Field,
    /// Metadata pairs (raw `key\u{1f}value`).
    pub meta: Field,
}

fn schema(kind: Bm25Analyzer) -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(tokenizer_name(kind))
        .set_index_option(IndexRecordOption::WithFreqs);
    let analysed = TextOptions::default().set_indexing_options(indexing);
    let id_opts = NumericOptions::default()
        .set_indexed()
        .set_fast()
        .set_stored();
    let fields = Fields {
        chunk_id: b.add_u64_field("chunk_id", id_opts),
        doc_id: b.add_text_field("doc_id", STRING | tantivy::schema::STORED),
        collection: b.add_text_field("collection", STRING | tantivy::schema::STORED),
        title: b.add_text_field("title", analysed.clone()),
        text: b.add_text_field("text", analysed),
        meta: b.add_text_field("meta", STRING),
    };
    (b.build(), fields)
}

fn meta_term(field: Field, key: &str, value: &str) -> Term {
    Term::from_field_text(field, &format!("{key}\u{1f}{value}"))
}

#[derive(Serialize, Deserialize)]
struct Payload {
    seq: Seq,
}

/// Read-side handle on a collection's tantivy index; clones share it.
#[derive(Clone)]
pub struct SparseIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    collection: String,
    title_in_text: bool,
}

impl SparseIndex {
    /// Opens the index in `dir`, creating it if absent.
    pub fn open(dir: &Path, config: Bm25Config, collection: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let kind = config.analyzer;
        let (schema, fields) = schema(kind);
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| IndexError::corrupt("tantivy directory", e))?;
        let index = Index::open_or_create(mmap, schema)?;
        index
            .tokenizers()
            .register(tokenizer_name(kind), analyzer(kind));
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            fields,
            collection: collection.to_owned(),
            title_in_text: config.title_in_text,
        })
    }

    /// The last sequence number contained in the last commit (0 if none).
    pub fn committed_seq(&self) -> Result<Seq> {
        let metas = self.index.load_metas()?;
        match metas.payload {
            Some(p) => Ok(serde_json::from_str::<Payload>(&p)
                .map_err(|e| IndexError::corrupt("tantivy commit payload", e))?
                .seq),
            None => Ok(0),
        }
    }

    /// Opens the (single) tantivy writer with `memory_bytes` of indexing budget.
    pub fn writer(&self, memory_bytes: usize) -> Result<SparseWriter> {
        let writer = self
            .index
            .writer_with_num_threads(1, memory_bytes.max(15_000_000))?;
        Ok(SparseWriter {
            writer,
            fields: self.fields,
            collection: self.collection.clone(),
            title_in_text: self.title_in_text,
        })
    }

    /// Reloads the reader after a commit and returns the new searcher.
    pub fn reload(&self) -> Result<tantivy::Searcher> {
        self.reader.reload()?;
        Ok(self.reader.searcher())
    }

    /// The current searcher (as of the last reload).
    pub fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }

    /// Analyses `text` into its distinct terms, in first-seen order.
    pub fn analyze(&self, text: &str) -> Result<Vec<String>> {
        let mut analyzer = self.index.tokenizer_for_field(self.fields.text)?;
        let mut stream = analyzer.token_stream(text);
        let mut seen = BTreeSet::new();
        let mut terms = Vec::new();
        while stream.advance() {
            let t = &stream.token().text;
            if seen.insert(t.clone()) {
                terms.push(t.clone());
            }
        }
        Ok(terms)
    }

    /// The distinct terms of `text` (the collection's analyzer) with their BM25 inverse
    /// document frequency in the text field of `searcher`'s snapshot, tantivy's
    /// `ln(1 + (N - n + 0.5) / (n + 0.5))` for `n` of `N` chunks holding the term. A term no
    /// chunk holds gets the largest weight, as BM25 would give it.
    pub fn idf(&self, searcher: &tantivy::Searcher, text: &str) -> Result<Vec<(String, f32)>> {
        let n_docs = searcher.num_docs() as f64;
        self.analyze(text)?
            .into_iter()
            .map(|t| {
                let n = searcher.doc_freq(&Term::from_field_text(self.fields.text, &t))? as f64;
                let idf = (1.0 + (n_docs - n + 0.5) / (n + 0.5)).ln();
                Ok((t, idf as f32))
            })
            .collect()
    }

    /// Top `k` chunks for `query` by BM25 over title and text, restricted by `filter`.
    pub fn search(
        &self,
        searcher: &tantivy::Searcher,
        query: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<ScoredChunk>> {
        let terms = self.analyze(query)?;
        if terms.is_empty() {
            return Err(IndexError::EmptyQuery);
        }
        let title_boost = if self.title_in_text {
            TITLE_BOOST_WITH_TITLE_IN_TEXT
        } else {
            TITLE_BOOST
        };
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in &terms {
            let text = TermQuery::new(
                Term::from_field_text(self.fields.text, t),
                IndexRecordOption::WithFreqs,
            );
            let title = TermQuery::new(
                Term::from_field_text(self.fields.title, t),
                IndexRecordOption::WithFreqs,
            );
            should.push((Occur::Should, Box::new(text)));
            should.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(title), title_boost)),
            ));
        }
        let text_query: Box<dyn Query> = Box::new(BooleanQuery::new(should));
        let query = self.filtered(text_query, filter);
        let top = searcher.search(&query, &TopDocs::with_limit(k).order_by_score())?;
        top.into_iter()
            .map(|(score, addr)| {
                Ok(ScoredChunk {
                    id: self.chunk_id(searcher, addr)?,
                    score,
                })
            })
            .collect()
    }

    /// `inner` restricted to documents matching every pair of `filter` (which adds no score).
    fn filtered(&self, inner: Box<dyn Query>, filter: &Filter) -> BooleanQuery {
        let mut clauses = vec![(Occur::Must, inner)];
        for (key, value) in &filter.must {
            let term = meta_term(self.fields.meta, key, value);
            let q = TermQuery::new(term, IndexRecordOption::Basic);
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(q), 0.0)),
            ));
        }
        BooleanQuery::new(clauses)
    }

    /// Ids of all chunks matching `filter` in `searcher`'s snapshot.
    pub fn matching_chunks(
        &self,
        searcher: &tantivy::Searcher,
        filter: &Filter,
    ) -> Result<HashSet<u64>> {
        let query = self.filtered(Box::new(AllQuery), filter);
        let addrs = searcher.search(&query, &DocSetCollector)?;
        addrs
            .into_iter()
            .map(|a| self.chunk_id(searcher, a).map(|c| c.0))
            .collect()
    }

    fn chunk_id(&self, searcher: &tantivy::Searcher, addr: DocAddress) -> Result<ChunkId> {
        let column = searcher
            .segment_reader(addr.segment_ord)
            .fast_fields()
            .u64("chunk_id")?;
        column
            .first(addr.doc_id)
            .map(ChunkId)
            .ok_or_else(|| IndexError::corrupt("tantivy document", "missing chunk_id"))
    }
}

/// Write-side handle: tantivy's `IndexWriter` plus the schema.
pub struct SparseWriter {
    writer: tantivy::IndexWriter,
    fields: Fields,
    collection: String,
    title_in_text: bool,
}

impl SparseWriter {
    /// Deletes chunk `id` (effective at the next commit; idempotent).
    pub fn delete_chunk(&self, id: ChunkId) {
        self.writer
            .delete_term(Term::from_field_u64(self.fields.chunk_id, id.0));
    }

    /// Deletes every document.
    pub fn delete_all(&mut self) -> Result<()> {
        self.writer.delete_all_documents()?;
        Ok(())
    }

    /// Adds chunk `id` of document `doc_id`.
    pub fn add_chunk(&self, id: ChunkId, chunk: &StoredChunk, doc: &StoredDoc) -> Result<()> {
        let f = &self.fields;
        let mut d = TantivyDocument::default();
        d.add_u64(f.chunk_id, id.0);
        d.add_text(f.doc_id, &chunk.doc_id);
        d.add_text(f.collection, &self.collection);
        d.add_text(f.title, &doc.title);
        if self.title_in_text && !doc.title.is_empty() {
            d.add_text(f.text, format!("{}\n{}", doc.title, chunk.text));
        } else {
            d.add_text(f.text, &chunk.text);
        }
        for (key, value) in &doc.metadata {
            d.add_text(f.meta, format!("{key}\u{1f}{value}"));
        }
        self.writer.add_document(d)?;
        Ok(())
    }

    /// Commits everything added or deleted so far, recording `seq` in the commit payload.
    pub fn commit(&mut self, seq: Seq) -> Result<()> {
        let payload = serde_json::to_string(&Payload { seq })
            .map_err(|e| IndexError::corrupt("tantivy commit payload", e))?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_stems_and_drops_stop_words() {
        assert_eq!(
            terms(Bm25Analyzer::English, "The Cats are Running"),
            ["cat", "run"]
        );
    }

    #[test]
    fn multilingual_bigrams_cjk_and_stems_english() {
        assert_eq!(
            terms(Bm25Analyzer::Multilingual, "The Cats are Running in 東京都"),
            ["cat", "run", "東京", "京都"]
        );
        let english = "Quantized weights: NF4 stores 16 levels; XJ-9000-B seals.";
        assert_eq!(
            terms(Bm25Analyzer::Multilingual, english),
            terms(Bm25Analyzer::English, english)
        );
    }

    proptest::proptest! {
        /// Without Han/Kana/Hangul, the default analyzer is exactly the English one, so English
        /// collections keep their measured BM25 quality.
        #[test]
        fn multilingual_equals_english_without_cjk(text in "\\PC{0,200}") {
            let text: String = text.chars().filter(|&c| !is_cjk(c)).collect();
            proptest::prop_assert_eq!(
                terms(Bm25Analyzer::Multilingual, &text),
                terms(Bm25Analyzer::English, &text)
            );
        }
    }

    #[test]
    fn cjk_bigrams_and_lowercase() {
        assert_eq!(
            terms(Bm25Analyzer::Cjk, "Tokyo東京都"),
            ["tokyo", "東京", "京都"]
        );
    }
}
