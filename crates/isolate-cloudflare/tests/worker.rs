//! What only this driver has: the Worker's authorization, its exactly-once protocol, and a
//! Worker that misbehaves (malformed, oversized, silent, gone). The real Worker runs on a
//! local workerd; the misbehaving one is a WebSocket server on 127.0.0.1 in this test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use code_mode::{
    Binding, Bindings, ContextConfig, ErrorKind, ExecutionResult, GuestError, IsolateDriver, Limits,
};
use code_mode_isolate_cloudflare::{CloudflareDriver, CloudflareOptions, LocalWorkerd};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn workerd(token: Option<&str>) -> Arc<LocalWorkerd> {
    let binary = LocalWorkerd::locate().unwrap_or_else(|e| panic!("{e}"));
    LocalWorkerd::start(&binary, token).unwrap_or_else(|e| panic!("{e}"))
}

async fn run(
    driver: &CloudflareDriver,
    bindings: Bindings,
    timeout: Duration,
    code: &str,
) -> ExecutionResult {
    let limits = Limits::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = driver
        .create_context(ContextConfig::new(bindings).with_limits(limits))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ctx.execute(code).await
}

fn driver_message(r: &ExecutionResult) -> String {
    match &r.outcome {
        Err(e)
            if e.kind.name() == "InternalError" && e.message.starts_with("Cloudflare driver: ") =>
        {
            e.message.clone()
        }
        other => panic!("expected a cloudflare driver error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_checks_authorization() {
    let w = workerd(Some("s3cret"));
    let with = |auth: Option<&str>| {
        CloudflareDriver::new(
            CloudflareOptions::new(w.url()).authorization(auth.map(str::to_owned)),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    for bad in [
        None,
        Some("Bearer wrong"),
        Some("s3cret"),
        Some("Bearer s3cret2"),
        Some("bearer s3cret"),
    ] {
        let r = run(
            &with(bad),
            Bindings::new(),
            Duration::from_secs(10),
            "return 1",
        )
        .await;
        assert!(
            r.error()
                .is_some_and(|e| e.message.contains("refused the authorization")),
            "{bad:?}: {r:?}"
        );
    }
    let r = run(
        &with(Some("Bearer s3cret")),
        Bindings::new(),
        Duration::from_secs(10),
        "return 1",
    )
    .await;
    assert_eq!(r.outcome, Ok(Some(json!(1))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_call_runs_once_and_logs_arrive_once_in_order() {
    let w = workerd(None);
    let driver = w.driver().unwrap_or_else(|e| panic!("{e}"));
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let mut bindings = Bindings::new();
    bindings
        .insert(
            Binding::new("external_charge", move |args| {
                let c = c.clone();
                Box::pin(async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, GuestError>(json!({"charged": args["amount"]}))
                })
            })
            .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let code = "console.log('before');\nconst a = await external_charge({amount: 1});\nconsole.log('between', a.charged);\nconst [b, c] = await Promise.all([external_charge({amount: 2}), external_charge({amount: 3})]);\ntry { await external_missing_tool(); } catch (e) { console.log('caught', e.name); }\nconsole.log('after');\nreturn a.charged + b.charged + c.charged;";
    let r = run(&driver, bindings, Duration::from_secs(10), code).await;
    assert_eq!(r.outcome, Ok(Some(json!(6))), "{r:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a tool call ran more than once"
    );
    let lines: Vec<&str> = r.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        lines,
        ["before", "between 1", "caught ReferenceError", "after"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_refuses_malformed_and_oversized_frames() {
    let w = workerd(None);
    let url = w.url().replace("http://", "ws://") + "/execute";
    for frame in [
        "not json".to_owned(),
        json!({"t": "run", "code": 5}).to_string(),
        "x".repeat(3 * 1024 * 1024),
    ] {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = ws.send(Message::text(frame)).await;
        let answer = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        match answer {
            Ok(Some(Ok(Message::Text(t)))) => assert!(t.contains("\"protocol\""), "{t}"),
            // Closing is also a refusal (the runtime may drop an oversized frame at once).
            Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => {}
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    assert!(w.healthy());
}

/// A WebSocket server on 127.0.0.1 that plays `script` after the run frame.
async fn fake_worker(script: &'static str) -> String {
    fake_worker_counted(script).await.0
}

/// [`fake_worker`], also counting the connections it accepted.
async fn fake_worker_counted(script: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let _ = ws.next().await; // the run frame
                match script {
                    // The connection drops (no close handshake) before any answer, once.
                    "reset_once" if n == 0 => return drop(ws),
                    "reset_once" => {
                        drop(ws.send(Message::text(r#"{"t":"done","value":"1"}"#)).await)
                    }
                    "reset_always" => return drop(ws),
                    // A tool call goes out, then the connection drops: never run twice.
                    "call_then_reset" => {
                        let _ = ws
                            .send(Message::text(
                                r#"{"t":"call","id":1,"name":"external_x","args":"{}"}"#,
                            ))
                            .await;
                        return drop(ws);
                    }
                    "garbage" => drop(ws.send(Message::text("{]")).await),
                    "unknown" => drop(ws.send(Message::text(r#"{"t":"surprise"}"#)).await),
                    "bad_args" => drop(
                        ws.send(Message::text(
                            r#"{"t":"call","id":1,"name":"external_x","args":"{nope"}"#,
                        ))
                        .await,
                    ),
                    "bad_value" => drop(
                        ws.send(Message::text(r#"{"t":"done","value":"{nope"}"#))
                            .await,
                    ),
                    "oversized" => drop(
                        ws.send(Message::text(format!(
                            r#"{{"t":"log","level":"log","msg":"{}"}}"#,
                            "x".repeat(64 * 1024)
                        )))
                        .await,
                    ),
                    "binary" => drop(ws.send(Message::binary(vec![1, 2, 3])).await),
                    "close" => drop(ws.close(None).await),
                    _ => {
                        // silent: keep the connection open, say nothing
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    (format!("http://{addr}"), connections)
}

/// A connection that breaks before the Worker answered anything is tried again, up to twice
/// (no tool can have run); one that breaks after a tool call went out is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_broken_before_any_answer_is_retried() {
    for (script, connections, ok) in [
        ("reset_once", 2, true),
        ("reset_always", 3, false),
        ("call_then_reset", 1, false),
    ] {
        let (url, seen) = fake_worker_counted(script).await;
        let driver =
            CloudflareDriver::new(CloudflareOptions::new(url)).unwrap_or_else(|e| panic!("{e}"));
        let r = run(
            &driver,
            Bindings::new(),
            Duration::from_secs(10),
            "return 1",
        )
        .await;
        if ok {
            assert_eq!(r.outcome, Ok(Some(json!(1))), "{script}: {r:?}");
        } else {
            assert!(
                driver_message(&r).contains("connection to the Worker failed"),
                "{script}: {r:?}"
            );
        }
        assert_eq!(seen.load(Ordering::SeqCst), connections, "{script}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_worker_gets_clear_errors_never_a_hang() {
    for (script, expected) in [
        ("garbage", "malformed response"),
        ("unknown", "malformed response"),
        ("bad_args", "malformed tool arguments"),
        ("bad_value", "malformed result"),
        ("oversized", "connection to the Worker failed"),
        ("binary", "unexpected binary frame"),
        ("close", "closed the connection"),
    ] {
        let url = fake_worker(script).await;
        let driver =
            CloudflareDriver::new(CloudflareOptions::new(url).max_message_bytes(16 * 1024))
                .unwrap_or_else(|e| panic!("{e}"));
        let r = run(
            &driver,
            Bindings::new(),
            Duration::from_secs(10),
            "return 1",
        )
        .await;
        let message = driver_message(&r);
        assert!(message.contains(expected), "{script}: {message}");
    }
    // Silent: the deadline ends it.
    let url = fake_worker("silent").await;
    let driver =
        CloudflareDriver::new(CloudflareOptions::new(url)).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let r = run(
        &driver,
        Bindings::new(),
        Duration::from_millis(400),
        "return 1",
    )
    .await;
    assert_eq!(r.error().map(|e| e.kind.clone()), Some(ErrorKind::Timeout));
    assert!(started.elapsed() < Duration::from_secs(3));
    // Nobody listening: a clear connection error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1);
    let driver = CloudflareDriver::new(CloudflareOptions::new(format!("http://127.0.0.1:{port}")))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = run(&driver, Bindings::new(), Duration::from_secs(5), "return 1").await;
    assert!(driver_message(&r).contains("cannot reach the Worker"));
}

/// A local workerd runs every isolate of a process on one thread. With a pool, a program
/// computing until its deadline holds only its own process: an execution started meanwhile
/// goes to the other one and answers long before the spinning program's deadline, and once
/// the spinning one has timed out (and its process restarted) the pool still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_program_holds_only_its_own_workerd() {
    use code_mode_isolate_cloudflare::LocalWorkerdPool;
    let binary = LocalWorkerd::locate().unwrap_or_else(|e| panic!("{e}"));
    let pool = LocalWorkerdPool::start(&binary, Some("pool"), 2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pool.urls().len(), 2);
    let driver = Arc::new(pool.driver().unwrap_or_else(|e| panic!("{e}")));
    let spinning = {
        let driver = driver.clone();
        tokio::spawn(async move {
            run(
                &driver,
                Bindings::new(),
                Duration::from_secs(4),
                "while (true) {}",
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        let r = run(
            &driver,
            Bindings::new(),
            Duration::from_millis(1500),
            &format!("return {i} + 1"),
        )
        .await;
        assert_eq!(r.outcome, Ok(Some(json!(i + 1))), "{r:?}");
    }
    assert!(
        !spinning.is_finished(),
        "the executions were answered only after the spinning program ended"
    );
    let spun = spinning.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spun.outcome.err().map(|e| e.kind), Some(ErrorKind::Timeout));
    for i in 0..4 {
        let r = run(
            &driver,
            Bindings::new(),
            Duration::from_secs(10),
            &format!("return {i}"),
        )
        .await;
        assert_eq!(r.outcome, Ok(Some(json!(i))), "{r:?}");
    }
}
