//! PostgreSQL storage: one table shared by every app server of a fleet.
//!
//! Stats are columns updated with `runs = runs + 1` in a single statement, so concurrent
//! runs on many servers never lose an increment; the trust promotion that may follow is a
//! conditional update (`WHERE trust = <old>`), so racing promotions apply once. Saves are
//! checked against the expected version in the same statement. The schema is created and
//! upgraded by embedded migrations under an advisory lock.

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls, Row};

use super::{Expect, SkillList, SkillStorage, check_expect};
use crate::error::SkillError;
use crate::skill::{RunRecord, Skill, SkillStats, validate_name};
use crate::trust::{TrustLevel, TrustStrategy};

/// Embedded migrations, applied in order, each once.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS code_mode_skills (
        name TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        trust TEXT NOT NULL,
        runs BIGINT NOT NULL DEFAULT 0,
        successes BIGINT NOT NULL DEFAULT 0,
        failures BIGINT NOT NULL DEFAULT 0,
        total_duration_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        last_duration_ms DOUBLE PRECISION,
        last_run_at TEXT,
        updated_at TEXT NOT NULL,
        doc JSONB NOT NULL
    )",
    ),
    // Paused chat executions (the `PausedStore` of `paused_postgres`).
    (
        2,
        "CREATE TABLE IF NOT EXISTS code_mode_paused (
            key TEXT PRIMARY KEY,
            data BYTEA NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        )",
    ),
    // Claimed snapshot ids (the `SnapshotLedger` of `ledger_postgres`).
    (
        3,
        "CREATE TABLE IF NOT EXISTS code_mode_snapshot_claims (
            id BYTEA PRIMARY KEY,
            expires_at TIMESTAMPTZ NOT NULL
        )",
    ),
];

const COLUMNS: &str = "name, version, trust, runs, successes, failures, total_duration_ms, last_duration_ms, last_run_at, updated_at, doc";

/// Skills in a PostgreSQL table (`code_mode_skills`).
pub struct PostgresStorage {
    client: Client,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage").finish_non_exhaustive()
    }
}

fn db(e: tokio_postgres::Error) -> SkillError {
    SkillError::Backend {
        backend: "postgres",
        reason: e.to_string(),
    }
}

impl PostgresStorage {
    /// Connects (e.g. `host=127.0.0.1 port=5432 user=app dbname=app` or a
    /// `postgresql://` URL) and applies the migrations. Must run inside a Tokio runtime,
    /// which drives the connection.
    pub async fn connect(config: &str) -> Result<Self, SkillError> {
        let (mut client, connection) = tokio_postgres::connect(config, NoTls).await.map_err(db)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(error = %e, "postgres skill storage connection ended");
            }
        });
        migrate(&mut client).await?;
        Ok(Self { client })
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// The schema version after migration.
    pub async fn schema_version(&self) -> Result<i32, SkillError> {
        let row = self
            .client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM code_mode_skills_migrations",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(row.get(0))
    }

    async fn current_version(&self, name: &str) -> Result<Option<u32>, SkillError> {
        let row = self
            .client
            .query_opt(
                "SELECT version FROM code_mode_skills WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get::<_, i32>(0) as u32))
    }
}

async fn migrate(client: &mut Client) -> Result<(), SkillError> {
    let tx = client.transaction().await.map_err(db)?;
    // One migrator at a time across the fleet.
    tx.execute("SELECT pg_advisory_xact_lock(7233017161)", &[])
        .await
        .map_err(db)?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS code_mode_skills_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        &[],
    )
    .await
    .map_err(db)?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM code_mode_skills_migrations",
            &[],
        )
        .await
        .map_err(db)?
        .get(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.batch_execute(sql).await.map_err(db)?;
        tx.execute(
            "INSERT INTO code_mode_skills_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

/// The columns of a skill, and the rest as a document.
fn doc_of(skill: &Skill) -> Value {
    json!({
        "id": skill.id, "name": skill.name, "description": skill.description, "code": skill.code,
        "inputSchema": skill.input_schema, "outputSchema": skill.output_schema,
        "usageHints": skill.usage_hints, "dependsOn": skill.depends_on, "createdAt": skill.created_at,
    })
}

fn from_row(row: &Row) -> Result<Skill, SkillError> {
    let name: String = row.try_get(0).map_err(db)?;
    let corrupt = |reason: String| SkillError::Corrupt {
        location: format!("postgres row {name:?}"),
        reason,
    };
    let mut doc: Value = row.try_get(10).map_err(db)?;
    let trust: String = row.try_get(2).map_err(db)?;
    let trust =
        TrustLevel::parse(&trust).ok_or_else(|| corrupt(format!("unknown trust {trust:?}")))?;
    let stats = SkillStats {
        runs: row.try_get::<_, i64>(3).map_err(db)?.max(0) as u64,
        successes: row.try_get::<_, i64>(4).map_err(db)?.max(0) as u64,
        failures: row.try_get::<_, i64>(5).map_err(db)?.max(0) as u64,
        total_duration_ms: row.try_get(6).map_err(db)?,
        last_duration_ms: row.try_get(7).map_err(db)?,
        last_run_at: row.try_get(8).map_err(db)?,
    };
    let Some(obj) = doc.as_object_mut() else {
        return Err(corrupt("doc is not an object".into()));
    };
    obj.insert("trust".into(), json!(trust));
    obj.insert(
        "stats".into(),
        serde_json::to_value(&stats).unwrap_or_default(),
    );
    obj.insert(
        "version".into(),
        json!(row.try_get::<_, i32>(1).map_err(db)?),
    );
    obj.insert(
        "updatedAt".into(),
        json!(row.try_get::<_, String>(9).map_err(db)?),
    );
    serde_json::from_value(doc).map_err(|e| corrupt(e.to_string()))
}

#[async_trait]
impl SkillStorage for PostgresStorage {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn list(&self) -> Result<SkillList, SkillError> {
        let rows = self
            .client
            .query(
                &format!("SELECT {COLUMNS} FROM code_mode_skills ORDER BY name"),
                &[],
            )
            .await
            .map_err(db)?;
        let mut out = SkillList::default();
        for row in &rows {
            match from_row(row) {
                Ok(s) => out.skills.push(s),
                Err(e) => out.skipped.push(e),
            }
        }
        Ok(out)
    }

    async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError> {
        validate_name(name)?;
        let row = self
            .client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM code_mode_skills WHERE name = $1"),
                &[&name],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(from_row).transpose()
    }

    async fn save(&self, skill: &Skill, expect: Expect) -> Result<(), SkillError> {
        skill.validate()?;
        let s = &skill.stats;
        let version = skill.version as i32;
        let (runs, successes, failures) = (s.runs as i64, s.successes as i64, s.failures as i64);
        let doc = doc_of(skill);
        let trust = skill.trust.as_str();
        let n = match expect {
            Expect::Absent => self
                .client
                .execute(
                    &format!("INSERT INTO code_mode_skills ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (name) DO NOTHING"),
                    &[&skill.name, &version, &trust, &runs, &successes, &failures, &s.total_duration_ms, &s.last_duration_ms, &s.last_run_at, &skill.updated_at, &doc],
                )
                .await
                .map_err(db)?,
            Expect::Version(expected) => {
                check_expect(&skill.name, Some(expected), expect, skill.version)?;
                self.client
                    .execute(
                        "UPDATE code_mode_skills SET version = $2, trust = $3, runs = $4, successes = $5, failures = $6, total_duration_ms = $7, last_duration_ms = $8, last_run_at = $9, updated_at = $10, doc = $11 WHERE name = $1 AND version = $12",
                        &[&skill.name, &version, &trust, &runs, &successes, &failures, &s.total_duration_ms, &s.last_duration_ms, &s.last_run_at, &skill.updated_at, &doc, &(expected as i32)],
                    )
                    .await
                    .map_err(db)?
            }
        };
        if n == 1 {
            return Ok(());
        }
        let found = self.current_version(&skill.name).await?;
        check_expect(&skill.name, found, expect, skill.version)?;
        Err(SkillError::Backend {
            backend: "postgres",
            reason: format!(
                "skill {:?} was not saved (concurrent change); retry",
                skill.name
            ),
        })
    }

    async fn delete(&self, name: &str) -> Result<bool, SkillError> {
        validate_name(name)?;
        let n = self
            .client
            .execute("DELETE FROM code_mode_skills WHERE name = $1", &[&name])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn record_run(
        &self,
        name: &str,
        run: &RunRecord,
        strategy: &TrustStrategy,
    ) -> Result<Option<Skill>, SkillError> {
        validate_name(name)?;
        let (ok, failed) = if run.success { (1i64, 0i64) } else { (0, 1) };
        let row = self
            .client
            .query_opt(
                &format!("UPDATE code_mode_skills SET runs = runs + 1, successes = successes + $2, failures = failures + $3, total_duration_ms = total_duration_ms + $4, last_duration_ms = $4, last_run_at = $5, updated_at = $5 WHERE name = $1 RETURNING {COLUMNS}"),
                &[&name, &ok, &failed, &run.duration_ms, &run.at],
            )
            .await
            .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let mut skill = from_row(&row)?;
        let promoted = strategy.evaluate(skill.trust, &skill.stats);
        if promoted != skill.trust {
            self.client
                .execute(
                    "UPDATE code_mode_skills SET trust = $2 WHERE name = $1 AND trust = $3",
                    &[&name, &promoted.as_str(), &skill.trust.as_str()],
                )
                .await
                .map_err(db)?;
            skill.trust = promoted;
        }
        Ok(Some(skill))
    }
}
