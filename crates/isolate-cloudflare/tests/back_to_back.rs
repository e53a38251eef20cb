//! Back-to-back fresh executions against one local workerd all succeed (a benchmark once saw
//! a connection reset under this load).

use code_mode::{ContextConfig, IsolateDriver};
use code_mode_isolate_cloudflare::LocalWorkerd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_fresh_executions_back_to_back() {
    let binary = LocalWorkerd::locate().unwrap_or_else(|e| panic!("{e}"));
    let workerd = LocalWorkerd::start(&binary, Some("b2b")).unwrap_or_else(|e| panic!("{e}"));
    let driver = workerd.driver().unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    for i in 0..1000 {
        let ctx = driver
            .create_context(ContextConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = ctx.execute("return 1 + 1").await;
        ctx.dispose().await;
        assert!(
            r.is_success(),
            "execution {i} after {:?}: {r:?}; workerd healthy: {}",
            started.elapsed(),
            workerd.healthy()
        );
    }
}
