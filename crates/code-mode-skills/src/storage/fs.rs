//! File-system storage: one directory, two human-readable files per skill.
//!
//! ```text
//! skills/
//!   top_repos.json       metadata, stats, trust (pretty JSON), naming its code file
//!   top_repos.v3.ts      the code of version 3
//!   .lock                taken exclusively by every writer (any process)
//! ```
//!
//! Crash and concurrency safety:
//! - every file is written to a temporary name, fsynced, renamed over the target, and the
//!   directory fsynced, so a reader sees the old file or the new one, never half of one;
//! - a new version writes its code under a new name first and then commits by replacing the
//!   metadata, so a writer killed at any point leaves the previous version readable (a
//!   stray code file is removed by the next save);
//! - writers (save, delete, record_run) hold an exclusive lock on `.lock` across their
//!   read-modify-write, so concurrent processes never lose an update; readers need no lock;
//! - names are validated identifiers and the metadata's code file must be
//!   `<name>.v<version>.ts`, so nothing can point outside the directory;
//! - an unreadable file is reported by `list` and skipped; the other skills still load.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::Value;

use super::{Expect, SkillList, SkillStorage, check_expect};
use crate::error::SkillError;
use crate::skill::{RunRecord, Skill, validate_name};
use crate::trust::TrustStrategy;

const FORMAT: u64 = 1;

/// Skills as files in one directory.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use code_mode_skills::{FileSystemStorage, SkillStorage};
/// let dir = std::env::temp_dir().join(format!("skills-doc-{}", std::process::id()));
/// let storage = FileSystemStorage::new(&dir).unwrap();
/// assert!(storage.list().await.unwrap().skills.is_empty());
/// # std::fs::remove_dir_all(&dir).ok();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FileSystemStorage {
    dir: PathBuf,
}

impl FileSystemStorage {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, SkillError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn code_name(name: &str, version: u32) -> String {
        format!("{name}.v{version}.ts")
    }

    /// Exclusive lock for the whole read-modify-write; released when the file closes.
    fn lock(&self) -> Result<File, SkillError> {
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", &path, e))?;
        file.lock().map_err(|e| io("lock", &path, e))?;
        Ok(file)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), SkillError> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}-{file_name}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(|e| io("write", path, e))
    }

    /// Reads one skill; `Ok(None)` when absent.
    fn read(&self, name: &str) -> Result<Option<Skill>, SkillError> {
        let meta_path = self.meta_path(name);
        let text = match std::fs::read_to_string(&meta_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &meta_path, e)),
        };
        let corrupt = |reason: String| SkillError::Corrupt {
            location: meta_path.display().to_string(),
            reason,
        };
        let mut meta: Value =
            serde_json::from_str(&text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let Some(obj) = meta.as_object_mut() else {
            return Err(corrupt("not a JSON object".into()));
        };
        let code_file = obj
            .remove("codeFile")
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| corrupt("codeFile is missing".into()))?;
        obj.remove("format");
        let version = obj.get("version").and_then(Value::as_u64).unwrap_or(0);
        let expected_code = u32::try_from(version)
            .map(|v| Self::code_name(name, v))
            .unwrap_or_default();
        if obj.get("name").and_then(Value::as_str) != Some(name) || code_file != expected_code {
            return Err(corrupt(format!(
                "its name or code file does not match the file name (expected {expected_code})"
            )));
        }
        let code_path = self.dir.join(&code_file);
        let code = std::fs::read_to_string(&code_path).map_err(|e| SkillError::Corrupt {
            location: code_path.display().to_string(),
            reason: format!("the code file cannot be read: {e}"),
        })?;
        obj.insert("code".into(), Value::String(code));
        let skill: Skill =
            serde_json::from_value(meta).map_err(|e| corrupt(format!("invalid metadata: {e}")))?;
        Ok(Some(skill))
    }

    fn write_meta(&self, skill: &Skill) -> Result<(), SkillError> {
        let mut meta = serde_json::to_value(skill).map_err(|e| SkillError::Invalid {
            name: skill.name.clone(),
            reason: e.to_string(),
        })?;
        if let Some(obj) = meta.as_object_mut() {
            obj.remove("code");
            obj.insert("format".into(), Value::from(FORMAT));
            obj.insert(
                "codeFile".into(),
                Value::String(Self::code_name(&skill.name, skill.version)),
            );
        }
        let mut text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        text.push('\n');
        self.write_atomic(&self.meta_path(&skill.name), text.as_bytes())
    }

    /// Removes code files of `name` other than `keep` (old versions, or leftovers of a
    /// writer that died before committing).
    fn remove_stale_code(&self, name: &str, keep: Option<&str>) {
        let prefix = format!("{name}.v");
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let is_code = file
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".ts"))
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
            if is_code && Some(file.as_str()) != keep {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn list_blocking(&self) -> Result<SkillList, SkillError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io("list", &self.dir, e))?;
        let mut out = SkillList::default();
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with('.') {
                continue;
            }
            let Some(name) = file.strip_suffix(".json") else {
                continue;
            };
            if validate_name(name).is_err() {
                out.skipped.push(SkillError::Corrupt {
                    location: entry.path().display().to_string(),
                    reason: "the file name is not a valid skill name".into(),
                });
                continue;
            }
            match self.read(name) {
                Ok(Some(skill)) => out.skills.push(skill),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable skill");
                    out.skipped.push(e);
                }
            }
        }
        out.skills.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn save_blocking(&self, skill: &Skill, expect: Expect) -> Result<(), SkillError> {
        skill.validate()?;
        let _lock = self.lock()?;
        let found = match self.read(&skill.name) {
            Ok(s) => s.map(|s| s.version),
            // A corrupt entry may be replaced by a new registration.
            Err(SkillError::Corrupt { .. }) if expect == Expect::Absent => None,
            Err(e) => return Err(e),
        };
        check_expect(&skill.name, found, expect, skill.version)?;
        let code_file = Self::code_name(&skill.name, skill.version);
        self.write_atomic(&self.dir.join(&code_file), skill.code.as_bytes())?;
        self.write_meta(skill)?; // the commit point
        self.remove_stale_code(&skill.name, Some(&code_file));
        Ok(())
    }

    fn delete_blocking(&self, name: &str) -> Result<bool, SkillError> {
        validate_name(name)?;
        let _lock = self.lock()?;
        let meta = self.meta_path(name);
        let existed = match std::fs::remove_file(&meta) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io("delete", &meta, e)),
        };
        if existed {
            let _ = File::open(&self.dir).and_then(|d| d.sync_all());
        }
        self.remove_stale_code(name, None);
        Ok(existed)
    }

    fn record_blocking(
        &self,
        name: &str,
        run: &RunRecord,
        strategy: &TrustStrategy,
    ) -> Result<Option<Skill>, SkillError> {
        validate_name(name)?;
        let _lock = self.lock()?;
        let Some(mut skill) = self.read(name)? else {
            return Ok(None);
        };
        skill.apply_run(run, strategy);
        self.write_meta(&skill)?;
        Ok(Some(skill))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Self) -> Result<T, SkillError> + Send + 'static,
    ) -> Result<T, SkillError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(me))
            .await
            .map_err(|e| SkillError::Backend {
                backend: "filesystem",
                reason: format!("the storage task failed: {e}"),
            })?
    }
}

fn io(op: &'static str, path: &Path, e: std::io::Error) -> SkillError {
    SkillError::Io {
        op,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

#[async_trait]
impl SkillStorage for FileSystemStorage {
    fn backend(&self) -> &'static str {
        "filesystem"
    }

    async fn list(&self) -> Result<SkillList, SkillError> {
        self.blocking(|me| me.list_blocking()).await
    }

    async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError> {
        validate_name(name)?;
        let name = name.to_owned();
        self.blocking(move |me| me.read(&name)).await
    }

    async fn save(&self, skill: &Skill, expect: Expect) -> Result<(), SkillError> {
        let skill = skill.clone();
        self.blocking(move |me| me.save_blocking(&skill, expect))
            .await
    }

    async fn delete(&self, name: &str) -> Result<bool, SkillError> {
        let name = name.to_owned();
        self.blocking(move |me| me.delete_blocking(&name)).await
    }

    async fn record_run(
        &self,
        name: &str,
        run: &RunRecord,
        strategy: &TrustStrategy,
    ) -> Result<Option<Skill>, SkillError> {
        let (name, run, strategy) = (name.to_owned(), run.clone(), *strategy);
        self.blocking(move |me| me.record_blocking(&name, &run, &strategy))
            .await
    }
}
