//! The README example runs and gives the documented answer.

#[path = "../quickstart.rs"]
mod quickstart;

#[tokio::test]
async fn quickstart_runs() {
    let (result, events) = match quickstart::run().await {
        Ok(r) => r,
        Err(e) => panic!("quickstart failed: {e}"),
    };
    assert_eq!(result.result, Some(serde_json::json!(20)));
    assert_eq!(
        events.first().map(String::as_str),
        Some("code_mode:execution_started")
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "code_mode:external_call")
            .count(),
        2
    );
}
