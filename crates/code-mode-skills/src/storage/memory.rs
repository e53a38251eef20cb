//! In-memory storage: a map behind a lock. For tests and ephemeral use.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio::sync::RwLock;

use super::{Expect, SkillList, SkillStorage, check_expect};
use crate::error::SkillError;
use crate::skill::{RunRecord, Skill, validate_name};
use crate::trust::TrustStrategy;

/// Skills in a map; lost when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use code_mode_skills::{InMemoryStorage, SkillStorage};
/// let storage = InMemoryStorage::new();
/// assert!(storage.list().await.unwrap().skills.is_empty());
/// # }
/// ```
#[derive(Debug, Default)]
pub struct InMemoryStorage {
    skills: RwLock<BTreeMap<String, Skill>>,
}

impl InMemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `skills` as given (timestamps and stats included).
    pub fn with_skills(skills: impl IntoIterator<Item = Skill>) -> Self {
        Self {
            skills: RwLock::new(skills.into_iter().map(|s| (s.name.clone(), s)).collect()),
        }
    }
}

#[async_trait]
impl SkillStorage for InMemoryStorage {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn list(&self) -> Result<SkillList, SkillError> {
        Ok(SkillList {
            skills: self.skills.read().await.values().cloned().collect(),
            skipped: Vec::new(),
        })
    }

    async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError> {
        validate_name(name)?;
        Ok(self.skills.read().await.get(name).cloned())
    }

    async fn save(&self, skill: &Skill, expect: Expect) -> Result<(), SkillError> {
        skill.validate()?;
        let mut skills = self.skills.write().await;
        let found = skills.get(&skill.name).map(|s| s.version);
        check_expect(&skill.name, found, expect, skill.version)?;
        skills.insert(skill.name.clone(), skill.clone());
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<bool, SkillError> {
        validate_name(name)?;
        Ok(self.skills.write().await.remove(name).is_some())
    }

    async fn record_run(
        &self,
        name: &str,
        run: &RunRecord,
        strategy: &TrustStrategy,
    ) -> Result<Option<Skill>, SkillError> {
        validate_name(name)?;
        let mut skills = self.skills.write().await;
        Ok(skills.get_mut(name).map(|s| {
            s.apply_run(run, strategy);
            s.clone()
        }))
    }
}
