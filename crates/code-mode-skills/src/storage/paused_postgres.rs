//! Paused executions in PostgreSQL (a [`PausedStore`]), for a fleet: the follow-up request
//! answering an approval may land on any server. One row per entry in `code_mode_paused`;
//! taking it is one `DELETE ... RETURNING`, so exactly one server gets it. Expired rows are
//! deleted by the next write.

use std::time::SystemTime;

use async_trait::async_trait;
use code_mode_chat::{PausedStore, StoreError};

use super::PostgresStorage;

fn failed(e: tokio_postgres::Error) -> StoreError {
    StoreError(format!("postgres: {e}"))
}

#[async_trait]
impl PausedStore for PostgresStorage {
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let client = self.client();
        client
            .execute(
                "DELETE FROM code_mode_paused WHERE expires_at <= now()",
                &[],
            )
            .await
            .map_err(failed)?;
        client
            .execute(
                "INSERT INTO code_mode_paused (key, data, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at",
                &[&key, &bytes, &expires_at],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .client()
            .query_opt(
                "DELETE FROM code_mode_paused WHERE key = $1 RETURNING data, expires_at > now()",
                &[&key],
            )
            .await
            .map_err(failed)?;
        Ok(row.and_then(|r| r.get::<_, bool>(1).then(|| r.get::<_, Vec<u8>>(0))))
    }
}
