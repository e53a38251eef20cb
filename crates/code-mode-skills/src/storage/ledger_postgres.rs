//! The single-use ledger of sealed executions in PostgreSQL (a
//! `code_mode::durable::SnapshotLedger`, features `durable` and `postgres`), shared by a
//! fleet: a snapshot resumed on one server is refused on every other. A claim is one
//! `INSERT … ON CONFLICT DO NOTHING` on `code_mode_snapshot_claims`; expired claims are
//! deleted by later ones.

use std::time::SystemTime;

use async_trait::async_trait;
use code_mode::durable::SnapshotLedger;

use super::PostgresStorage;

#[async_trait]
impl SnapshotLedger for PostgresStorage {
    async fn claim(&self, id: [u8; 16], expires_at: SystemTime) -> Result<bool, String> {
        let client = self.client();
        let failed = |e: tokio_postgres::Error| format!("postgres: {e}");
        client
            .execute(
                "DELETE FROM code_mode_snapshot_claims WHERE expires_at <= now()",
                &[],
            )
            .await
            .map_err(failed)?;
        let inserted = client
            .execute(
                "INSERT INTO code_mode_snapshot_claims (id, expires_at) VALUES ($1, $2)
                 ON CONFLICT (id) DO NOTHING",
                &[&id.as_slice(), &expires_at],
            )
            .await
            .map_err(failed)?;
        Ok(inserted == 1)
    }
}
