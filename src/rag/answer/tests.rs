//! Unit tests of `rag::answer`.

use std::sync::Arc;

use ingest::testing::HashEmbedder;

use super::*;
use crate::model::llm::FinishReason;
use crate::rag::prompt::tests::hit;

fn generation(text: &str) -> Generation {
    Generation {
        text: text.into(),
        finish: FinishReason::Eos,
        prompt_tokens: 100,
        completion_tokens: 11,
        prompt_time: Duration::from_millis(50),
        time_to_first_token: Duration::from_millis(60),
        decode_time: Duration::from_millis(100),
    }
}

fn prepared(hits: Vec<Hit>) -> Prepared {
    prepared_for("q", hits)
}

fn prepared_for(question: &str, hits: Vec<Hit>) -> Prepared {
    let g = prompt::tests::WordGenerator::new(1000, "");
    let budget = PromptBudget {
        context_tokens: 1000,
        reply_tokens: 10,
    };
    let texts: Vec<&str> = hits.iter().map(|h| h.chunk.text.as_str()).collect();
    let evidence = Evidence::gather(Arc::new(HashEmbedder::new()), question, &texts).unwrap();
    Prepared {
        question: question.into(),
        prompt: Some(prompt::build(&g, question, &hits, budget).unwrap()),
        evidence: Some(evidence),
        retrieved: hits.len(),
        gate: None,
        relevance: None,
        retrieve_time: Duration::from_millis(3),
        rerank_time: Duration::from_millis(2),
        reader: None,
    }
}

#[test]
fn finish_maps_citations_to_chunks_and_spans() {
    let p = prepared(vec![
        hit(1, "A", "alpha comes first", 0.9),
        hit(2, "B", "beta holds", 0.8),
    ]);
    let a = finish(&p, Some(&generation("Beta holds [2]."))).unwrap();
    assert_eq!(a.text, "Beta holds [2].");
    assert!(!a.not_found);
    assert_eq!(a.citations.len(), 1);
    let c = &a.citations[0];
    assert_eq!((c.number, c.doc_id.as_str(), c.chunk_id), (2, "doc-2", 2));
    assert_eq!(
        (c.span_start, c.span_end, c.text.as_str()),
        (10, 20, "beta holds")
    );
    assert_eq!(a.stats.completion_tokens, 11);
    assert!((a.stats.tokens_per_second - 100.0).abs() < 1e-9);
    assert_eq!((a.stats.retrieve_ms, a.stats.rerank_ms), (3.0, 2.0));
    assert_eq!(a.stats.sources_used, 2);
}

#[test]
fn unsupported_sentences_and_their_citations_are_removed() {
    let p = prepared(vec![
        hit(1, "A", "alpha comes first", 0.9),
        hit(2, "B", "beta holds", 0.8),
    ]);
    let reply = "Alpha comes first [1]. Gamma rays melt the moon [2].";
    let a = finish(&p, Some(&generation(reply))).unwrap();
    assert_eq!(a.text, "Alpha comes first [1].");
    assert_eq!(a.citations.len(), 1);
    assert_eq!(a.citations[0].doc_id, "doc-1");
    assert_eq!(a.stats.unsupported_removed, 1);
    assert!(!a.stats.extractive);
}

#[test]
fn a_model_reply_of_not_found_is_flagged() {
    let p = prepared(vec![hit(1, "A", "alpha", 0.9)]);
    let a = finish(&p, Some(&generation(" Not found in the knowledge base."))).unwrap();
    assert!(a.not_found);
    assert_eq!(a.text, NOT_FOUND);
    assert!(a.citations.is_empty());
}

#[test]
fn no_prompt_means_not_found_without_generation() {
    let p = Prepared {
        question: "q".into(),
        prompt: None,
        evidence: None,
        retrieved: 3,
        gate: None,
        relevance: Some(0.01),
        retrieve_time: Duration::ZERO,
        rerank_time: Duration::ZERO,
        reader: None,
    };
    let a = finish(&p, None).unwrap();
    assert!(a.not_found);
    assert_eq!(a.stats.prompt_tokens, 0);
}

#[test]
fn whole_words_widens_only_a_copy_cut_inside_a_word() {
    let text = "born in North Carolina, 1901; 東京都に住む";
    let at = |s: &str| text.find(s).unwrap();
    let north = at("North");
    assert_eq!(
        &text[whole_words(text, north..north + 4)],
        "North",
        "a copy stopping inside a word takes the word"
    );
    let carolina = at("Carolina");
    assert_eq!(
        &text[whole_words(text, carolina - 6..carolina + 8)],
        "North Carolina"
    );
    assert_eq!(&text[whole_words(text, north - 3..north)], "in ");
    let tokyo = at("東京");
    assert_eq!(
        &text[whole_words(text, tokyo..tokyo + "東京".len())],
        "東京",
        "CJK has no spaces to widen to"
    );
}

#[test]
fn a_copied_short_answer_becomes_an_exact_span_of_whole_words() {
    let source = "The Alps were crossed by Hannibal and his elephants in 218 BC.";
    let p = prepared_for("What crossed the Alps?", vec![hit(1, "A", source, 0.9)]);
    let mut a = finish(&p, Some(&generation("Hannibal crossed the Alps [1]."))).unwrap();
    assert!(!a.not_found, "{a:?}");
    let request = short_request(&p, &a).unwrap();
    assert_eq!(request.params.temperature, 0.0);
    assert!(!request.params.copy_from.is_empty());
    // A copy that stops inside a word and runs on past the answer.
    apply_short(&p, &mut a, &request, &generation("Hanniba"));
    let short = a.short_answer.clone().unwrap();
    assert_eq!(short.text, "Hannibal");
    // Spans are character offsets in the document, where this chunk starts at 10.
    let chars: Vec<char> = source.chars().collect();
    let spanned: String = chars[short.span_start - 10..short.span_end - 10]
        .iter()
        .collect();
    assert_eq!(spanned, "Hannibal");
    apply_short(
        &p,
        &mut a,
        &request,
        &generation("Hannibal and his elephants in"),
    );
    let short = a.short_answer.clone().unwrap();
    assert_eq!(short.text, "Hannibal and his elephants");
    // A reply that is not in the sentence leaves the short answer as it was.
    apply_short(&p, &mut a, &request, &generation("Napoleon"));
    assert_eq!(a.short_answer.unwrap().text, "Hannibal and his elephants");
}

#[test]
fn a_question_asking_for_a_name_gets_the_name_without_the_copy_step() {
    let source = "The Alps were crossed by Hannibal and his elephants in 218 BC.";
    let p = prepared_for("Who crossed the Alps?", vec![hit(1, "A", source, 0.9)]);
    let a = finish(&p, Some(&generation("Hannibal's army crossed them [1]."))).unwrap();
    let short = a.short_answer.clone().unwrap();
    assert_eq!(short.text, "Hannibal");
    assert_eq!(short_request(&p, &a).map(|r| r.sentence), None);
    let p = prepared_for(
        "When were the Alps crossed?",
        vec![hit(1, "A", source, 0.9)],
    );
    let a = finish(&p, Some(&generation("In 218 BC [1]."))).unwrap();
    assert_eq!(a.short_answer.unwrap().text, "218 BC");
}

/// A reader that answers with the first occurrence of a fixed phrase, scored by the passage's
/// position from the end (a later passage holding it scores lower).
struct PhraseReader(&'static str);

impl Reader for PhraseReader {
    fn read(
        &self,
        _question: &str,
        passages: &[&str],
    ) -> std::result::Result<
        Vec<Option<crate::model::rerank::ReadSpan>>,
        crate::model::rerank::RerankError,
    > {
        Ok(passages
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // A span cut inside words, as wordpieces can be: "ephant" of "elephants".
                p.find(self.0).map(|at| crate::model::rerank::ReadSpan {
                    range: at + 2..at + self.0.len() - 1,
                    score: 10.0 - i as f32,
                    null_score: 0.0,
                })
            })
            .collect())
    }

    fn model_id(&self) -> &str {
        "phrase"
    }
}

#[test]
fn a_readers_span_is_the_short_answer_and_its_sentence_is_ranked_first() {
    let question = "Who crossed the Alps with elephants?";
    let hits = vec![
        hit(
            1,
            "A",
            "The Alps are high. Elephants are large animals.",
            0.9,
        ),
        hit(
            2,
            "B",
            "Rome feared many. The Alps were crossed by Hannibal in 218 BC.",
            0.8,
        ),
    ];
    let mut p = prepared_for(question, hits);
    let mut evidence = p.evidence.take().unwrap();
    let prompt = p.prompt.clone().unwrap();
    let span = read(&PhraseReader("Hannibal"), question, &prompt, &mut evidence)
        .unwrap()
        .unwrap();
    assert_eq!(span.sentence, 0);
    let first = &evidence.sentences[0];
    assert_eq!(first.source, 2);
    assert_eq!(first.text, "The Alps were crossed by Hannibal in 218 BC.");
    let chunk = &prompt.sources[1].hit.chunk.text;
    assert_eq!(
        &chunk[span.range.clone()],
        "Hannibal",
        "widened to whole words"
    );
    // Through the answer: the reader runs when generation is over.
    let mut p = prepared_for(
        question,
        p.prompt
            .unwrap()
            .sources
            .iter()
            .map(|s| s.hit.clone())
            .collect(),
    );
    p.reader = Some(ReaderHandle(Arc::new(PhraseReader("Hannibal"))));
    let mut a = finish(&p, Some(&generation("Hannibal crossed them [2]."))).unwrap();
    let short = a.short_answer.clone().unwrap();
    assert_eq!(
        (short.text.as_str(), short.number, short.doc_id.as_str()),
        ("Hannibal", 2, "doc-2")
    );
    assert_eq!(short.span_start, 10 + chunk.find("Hannibal").unwrap());
    assert!(a.stats.read_ms > 0.0);
    assert!(
        short_request(&p, &a).is_none(),
        "no copying generation after a reader"
    );
    shorten(&p, &mut a, &prompt::tests::WordGenerator::new(1000, "Rome")).unwrap();
    assert_eq!(a.short_answer.unwrap().text, "Hannibal");
    // An answer that quotes the evidence quotes the reader's sentence first.
    let a = finish(&p, Some(&generation("Elephants are large animals [1]."))).unwrap();
    if a.stats.extractive {
        assert!(
            a.text.starts_with("The Alps were crossed by Hannibal"),
            "{}",
            a.text
        );
    }

    // A span no evidence sentence holds (nothing found) gives no reader answer.
    let mut p = prepared_for(question, vec![hit(1, "A", "Rome feared many.", 0.9)]);
    let mut evidence = p.evidence.take().unwrap();
    let prompt = p.prompt.clone().unwrap();
    assert_eq!(
        read(&PhraseReader("Hannibal"), question, &prompt, &mut evidence).unwrap(),
        None
    );
}
