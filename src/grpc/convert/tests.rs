//! Unit tests of `convert.rs`.

use super::*;

#[test]
fn retrieval_defaults_and_bounds() {
    let o = RetrieveOptions::try_from(pb::RetrievalOptions::default()).unwrap();
    assert_eq!((o.k, o.candidates, o.mode), (10, 100, Mode::Hybrid));
    assert_eq!(o.fusion, DEFAULT_FUSION);
    let big = pb::RetrievalOptions {
        k: MAX_SEARCH_K + 1,
        ..Default::default()
    };
    assert!(RetrieveOptions::try_from(big).is_err());
    let bad_alpha = pb::RetrievalOptions {
        fusion: Some(pb::Fusion {
            method: Some(pb::fusion::Method::Convex(pb::Convex {
                alpha: 1.5,
                normalization: 0,
            })),
        }),
        ..Default::default()
    };
    assert!(RetrieveOptions::try_from(bad_alpha).is_err());
}

#[test]
fn documents_need_id_and_text() {
    let input = |id: &str, text: &str| pb::DocumentInput {
        id: id.into(),
        title: String::new(),
        text: text.into(),
        metadata: Default::default(),
    };
    assert!(document(input("a", "hello")).is_ok());
    assert_eq!(
        document(input("", "x")).unwrap_err().1,
        "the document id is empty"
    );
    assert!(document(input("b", "  \n")).is_err());
}

#[test]
fn ask_k_is_bounded_by_what_one_prompt_holds() {
    let ask = |k: u32| {
        AskQuery::try_from(pb::AskRequest {
            collection: "kb".into(),
            question: "which seal?".into(),
            retrieval: Some(pb::RetrievalOptions {
                k,
                ..Default::default()
            }),
            generation: None,
        })
    };
    assert_eq!(ask(MAX_ASK_K).unwrap().retrieval.k, MAX_ASK_K as usize);
    let err = ask(MAX_ASK_K + 1).unwrap_err().to_string();
    assert!(err.contains("at most 50 for Ask"), "{err}");
    // Search keeps its own, larger bound.
    let search = pb::RetrievalOptions {
        k: MAX_SEARCH_K,
        ..Default::default()
    };
    assert!(RetrieveOptions::try_from(search).is_ok());
}
