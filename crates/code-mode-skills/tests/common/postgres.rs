//! A fresh PostgreSQL database per case, on the server `cargo xtask test` started.

use std::sync::atomic::{AtomicU32, Ordering};

use code_mode_skills::PostgresStorage;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The server `cargo xtask test` started.
pub(crate) fn server() -> String {
    std::env::var("CODE_MODE_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("CODE_MODE_TEST_POSTGRES is not set: `cargo xtask test` starts a PostgreSQL server for these tests and sets it (e.g. `host=127.0.0.1 port=5433 user=postgres`)")
    })
}

/// A new, empty database on that server, so cases do not see each other's skills.
pub(crate) async fn fresh_database() -> PostgresStorage {
    let base = server();
    let name = format!(
        "skills_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let (client, conn) =
        tokio_postgres::connect(&format!("{base} dbname=postgres"), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {base}: {e}"));
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    PostgresStorage::connect(&format!("{base} dbname={name}"))
        .await
        .unwrap()
}
