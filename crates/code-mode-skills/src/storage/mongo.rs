//! MongoDB storage (the official `mongodb` driver): one document per skill, `_id` = name.
//!
//! Runs are counted with `$inc` in one `findOneAndUpdate`, so concurrent runs never lose an
//! increment; a trust promotion is a conditional update on the old level. Saves are an
//! insert (duplicate key = name taken) or a replace filtered on the expected version.

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;
use mongodb::{Client, Collection};

use super::{Expect, SkillList, SkillStorage, check_expect};
use crate::error::SkillError;
use crate::skill::{RunRecord, Skill, validate_name};
use crate::trust::TrustStrategy;

/// Skills in a MongoDB collection.
#[derive(Debug, Clone)]
pub struct MongoStorage {
    coll: Collection<Document>,
}

fn db(e: mongodb::error::Error) -> SkillError {
    SkillError::Backend {
        backend: "mongo",
        reason: e.to_string(),
    }
}

/// The document of a skill: its JSON form with `_id` set to the name.
///
/// ```
/// # use code_mode_skills::storage::{to_document, from_document};
/// # let skill: code_mode_skills::Skill = serde_json::from_value(serde_json::json!({"id": "1", "name": "a",
/// #     "description": "d", "code": "return 1", "inputSchema": {}, "outputSchema": {}, "trust": "untrusted",
/// #     "version": 1, "createdAt": "t", "updatedAt": "t"})).unwrap();
/// let doc = to_document(&skill).unwrap();
/// assert_eq!(doc.get_str("_id").unwrap(), "a");
/// assert_eq!(from_document(doc).unwrap(), skill);
/// ```
pub fn to_document(skill: &Skill) -> Result<Document, SkillError> {
    let mut doc = mongodb::bson::to_document(skill).map_err(|e| SkillError::Invalid {
        name: skill.name.clone(),
        reason: format!("cannot be stored in MongoDB: {e}"),
    })?;
    doc.insert("_id", skill.name.clone());
    Ok(doc)
}

/// The skill of a document written by [`to_document`] (or updated by the storage).
pub fn from_document(mut doc: Document) -> Result<Skill, SkillError> {
    let id = match doc.remove("_id") {
        Some(Bson::String(s)) => s,
        other => format!("{other:?}"),
    };
    // Counters written by `$inc` may come back as 32- or 64-bit integers or doubles.
    if let Ok(stats) = doc.get_document_mut("stats") {
        for key in ["runs", "successes", "failures"] {
            let n = match stats.get(key) {
                Some(Bson::Int32(v)) => i64::from(*v),
                Some(Bson::Int64(v)) => *v,
                Some(Bson::Double(v)) => *v as i64,
                _ => 0,
            };
            stats.insert(key, n);
        }
    }
    mongodb::bson::from_document(doc).map_err(|e| SkillError::Corrupt {
        location: format!("mongo document {id:?}"),
        reason: e.to_string(),
    })
}

impl MongoStorage {
    /// Connects to `uri` and uses collection `skills` of database `database`.
    pub async fn connect(uri: &str, database: &str) -> Result<Self, SkillError> {
        let client = Client::with_uri_str(uri).await.map_err(db)?;
        Ok(Self::from_collection(
            client.database(database).collection("skills"),
        ))
    }

    /// Uses an existing collection.
    pub fn from_collection(coll: Collection<Document>) -> Self {
        Self { coll }
    }

    async fn current_version(&self, name: &str) -> Result<Option<u32>, SkillError> {
        let found = self.coll.find_one(doc! {"_id": name}).await.map_err(db)?;
        Ok(found.and_then(|d| match d.get("version") {
            Some(Bson::Int32(v)) => Some(*v as u32),
            Some(Bson::Int64(v)) => Some(*v as u32),
            _ => None,
        }))
    }
}

#[async_trait]
impl SkillStorage for MongoStorage {
    fn backend(&self) -> &'static str {
        "mongo"
    }

    async fn list(&self) -> Result<SkillList, SkillError> {
        let mut cursor = self
            .coll
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .map_err(db)?;
        let mut out = SkillList::default();
        while let Some(d) = cursor.try_next().await.map_err(db)? {
            match from_document(d) {
                Ok(s) => out.skills.push(s),
                Err(e) => out.skipped.push(e),
            }
        }
        Ok(out)
    }

    async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError> {
        validate_name(name)?;
        let found = self.coll.find_one(doc! {"_id": name}).await.map_err(db)?;
        found.map(from_document).transpose()
    }

    async fn save(&self, skill: &Skill, expect: Expect) -> Result<(), SkillError> {
        skill.validate()?;
        let document = to_document(skill)?;
        match expect {
            Expect::Absent => match self.coll.insert_one(document).await {
                Ok(_) => Ok(()),
                Err(e) if is_duplicate(&e) => {
                    let found = self.current_version(&skill.name).await?;
                    check_expect(&skill.name, found, expect, skill.version)
                }
                Err(e) => Err(db(e)),
            },
            Expect::Version(expected) => {
                check_expect(&skill.name, Some(expected), expect, skill.version)?;
                let r = self
                    .coll
                    .replace_one(doc! {"_id": &skill.name, "version": expected}, document)
                    .await
                    .map_err(db)?;
                if r.matched_count == 1 {
                    return Ok(());
                }
                let found = self.current_version(&skill.name).await?;
                check_expect(&skill.name, found, expect, skill.version)?;
                Err(SkillError::Backend {
                    backend: "mongo",
                    reason: format!(
                        "skill {:?} was not saved (concurrent change); retry",
                        skill.name
                    ),
                })
            }
        }
    }

    async fn delete(&self, name: &str) -> Result<bool, SkillError> {
        validate_name(name)?;
        let r = self.coll.delete_one(doc! {"_id": name}).await.map_err(db)?;
        Ok(r.deleted_count > 0)
    }

    async fn record_run(
        &self,
        name: &str,
        run: &RunRecord,
        strategy: &TrustStrategy,
    ) -> Result<Option<Skill>, SkillError> {
        validate_name(name)?;
        let (ok, failed) = if run.success { (1i64, 0i64) } else { (0, 1) };
        let updated = self
            .coll
            .find_one_and_update(
                doc! {"_id": name},
                doc! {
                    "$inc": {"stats.runs": 1i64, "stats.successes": ok, "stats.failures": failed, "stats.totalDurationMs": run.duration_ms},
                    "$set": {"stats.lastDurationMs": run.duration_ms, "stats.lastRunAt": &run.at, "updatedAt": &run.at},
                },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(db)?;
        let Some(d) = updated else { return Ok(None) };
        let mut skill = from_document(d)?;
        let promoted = strategy.evaluate(skill.trust, &skill.stats);
        if promoted != skill.trust {
            self.coll
                .update_one(
                    doc! {"_id": name, "trust": skill.trust.as_str()},
                    doc! {"$set": {"trust": promoted.as_str()}},
                )
                .await
                .map_err(db)?;
            skill.trust = promoted;
        }
        Ok(Some(skill))
    }
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    matches!(&*e.kind, ErrorKind::Write(WriteFailure::WriteError(we)) if we.code == 11000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skill::SkillStats;
    use crate::trust::TrustLevel;

    fn sample() -> Skill {
        Skill {
            id: "6f1c".into(),
            name: "top_repos".into(),
            description: "Top repositories ✓".into(),
            code: "return await external_search({q: input.q});".into(),
            input_schema: serde_json::json!({"type": "object", "properties": {"q": {"type": "string"}}}),
            output_schema: serde_json::json!({"type": "array"}),
            usage_hints: vec!["github".into()],
            depends_on: vec!["external_search".into()],
            stats: SkillStats {
                runs: 7,
                successes: 6,
                failures: 1,
                last_run_at: Some("2026-11-22T00:00:00.000Z".into()),
                last_duration_ms: Some(12.5),
                total_duration_ms: 80.0,
            },
            trust: TrustLevel::Provisional,
            version: 3,
            created_at: "2026-11-01T00:00:00.000Z".into(),
            updated_at: "2026-11-22T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn documents_round_trip_with_the_name_as_id() {
        let skill = sample();
        let doc = to_document(&skill).unwrap_or_default();
        assert_eq!(doc.get_str("_id").ok(), Some("top_repos"));
        assert_eq!(doc.get_str("trust").ok(), Some("provisional"));
        let stats = doc.get_document("stats").cloned().unwrap_or_default();
        assert!(stats.contains_key("totalDurationMs") && stats.contains_key("lastRunAt"));
        assert_eq!(from_document(doc).ok(), Some(skill));
    }

    #[test]
    fn counters_of_any_numeric_type_are_read() {
        let mut doc = to_document(&sample()).unwrap_or_default();
        if let Ok(stats) = doc.get_document_mut("stats") {
            stats.insert("runs", Bson::Int32(9));
            stats.insert("successes", Bson::Double(8.0));
        }
        let skill = from_document(doc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((skill.stats.runs, skill.stats.successes), (9, 8));
    }

    #[test]
    fn broken_documents_are_corrupt_not_panics() {
        let doc = doc! {"_id": "x", "name": 5};
        assert!(matches!(
            from_document(doc),
            Err(SkillError::Corrupt { .. })
        ));
    }
}
