//! Unit tests of [`super::AppState`].
use ingest::testing::HashEmbedder;

use super::*;
use crate::serving::Refused;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_look_ups_answer_while_the_request_gate_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.embedder.queue = 1;
    let state = AppState::new(config, Arc::new(HashEmbedder::default()), None).unwrap();
    // One request holds the only permit until released.
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let s = state.clone();
    let held = tokio::spawn(async move {
        s.blocking(move |_| {
            let _ = started_tx.send(());
            wait.recv().unwrap();
            Ok(())
        })
        .await
    });
    started.await.unwrap();
    let refused = state.blocking(|s| s.list_collections()).await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::Refused(Refused::Overloaded("server")))
        ),
        "{refused:?}"
    );
    // Job records need no permit: listing and looking up still answer.
    assert!(state
        .unmetered(|s| s.jobs().list())
        .await
        .unwrap()
        .is_empty());
    let missing = state
        .unmetered(|s| s.jobs().get("job-0000000001"))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ServiceError::NotFound { .. }),
        "{missing}"
    );
    release.send(()).unwrap();
    held.await.unwrap().unwrap();
    assert!(state.blocking(|s| s.list_collections()).await.is_ok());
}
