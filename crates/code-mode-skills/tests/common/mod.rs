//! Shared by the skills tests: sample skills and the storage behaviour suite.
#![allow(dead_code)]

#[cfg(feature = "postgres")]
pub(crate) mod postgres;

use code_mode_skills::{Skill, SkillStats, TrustLevel, now_rfc3339};
use serde_json::json;

/// A valid skill named `name`, version `version`.
pub(crate) fn skill(name: &str, version: u32) -> Skill {
    let now = now_rfc3339();
    Skill {
        id: format!("id-{name}"),
        name: name.into(),
        description: format!("Skill {name}: fetches and compares data ✓"),
        code: format!(
            "// version {version}\nreturn {{ name: {name:?}, version: {version}, n: input.n }};"
        ),
        input_schema: json!({"type": "object", "properties": {"n": {"type": "number"}}}),
        output_schema: json!({"type": "object"}),
        usage_hints: vec!["when comparing".into()],
        depends_on: vec!["external_fetch".into()],
        stats: SkillStats::default(),
        trust: TrustLevel::Untrusted,
        version,
        created_at: now.clone(),
        updated_at: now,
    }
}

/// The storage behaviour suite: every backend runs these cases.
#[macro_export]
macro_rules! storage_suite {
    ($make:expr $(, #[$m:meta])*) => {
        use std::sync::Arc;
        use code_mode_skills::{Expect, RunRecord, SkillError, SkillStorage, TrustLevel, TrustStrategy};
        use $crate::common::skill;

        async fn storage() -> Arc<dyn SkillStorage> {
            $make.await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$m])*
        async fn round_trips_every_field() {
            let s = storage().await;
            let mut original = skill("round_trip", 1);
            original.stats.runs = 3;
            original.stats.successes = 2;
            original.stats.failures = 1;
            original.stats.last_duration_ms = Some(1.5);
            original.stats.total_duration_ms = 4.5;
            original.stats.last_run_at = Some(original.updated_at.clone());
            original.code.push_str("\n// \"quotes\" `ticks` ${x} \\ \u{2028}");
            s.save(&original, Expect::Absent).await.unwrap();
            assert_eq!(s.get("round_trip").await.unwrap(), Some(original.clone()));
            let list = s.list().await.unwrap();
            assert_eq!(list.skills, vec![original]);
            assert!(list.skipped.is_empty());
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$m])*
        async fn names_are_unique_and_versions_checked() {
            let s = storage().await;
            s.save(&skill("versioned", 1), Expect::Absent).await.unwrap();
            match s.save(&skill("versioned", 1), Expect::Absent).await {
                Err(SkillError::AlreadyExists { version: 1, .. }) => {}
                other => panic!("duplicate accepted: {other:?}"),
            }
            s.save(&skill("versioned", 2), Expect::Version(1)).await.unwrap();
            match s.save(&skill("versioned", 2), Expect::Version(1)).await {
                Err(SkillError::VersionConflict { expected: 1, found: 2, .. }) => {}
                other => panic!("stale replace accepted: {other:?}"),
            }
            match s.save(&skill("never_saved", 2), Expect::Version(1)).await {
                Err(SkillError::NotFound(_)) => {}
                other => panic!("replace of a missing skill accepted: {other:?}"),
            }
            let got = s.get("versioned").await.unwrap().unwrap();
            assert_eq!(got.version, 2);
            assert!(got.code.contains("version 2"));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$m])*
        async fn lists_by_name_and_deletes() {
            let s = storage().await;
            for name in ["charlie", "alpha", "bravo"] {
                s.save(&skill(name, 1), Expect::Absent).await.unwrap();
            }
            let names: Vec<String> = s.list().await.unwrap().skills.into_iter().map(|k| k.name).collect();
            assert_eq!(names, ["alpha", "bravo", "charlie"]);
            assert!(s.delete("bravo").await.unwrap());
            assert!(!s.delete("bravo").await.unwrap());
            assert_eq!(s.get("bravo").await.unwrap(), None);
            assert_eq!(s.list().await.unwrap().skills.len(), 2);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$m])*
        async fn runs_update_stats_and_promote_trust() {
            let s = storage().await;
            s.save(&skill("earner", 1), Expect::Absent).await.unwrap();
            let relaxed = TrustStrategy::relaxed();
            let mut last = None;
            for i in 0..3 {
                last = s.record_run("earner", &RunRecord::now(true, 10.0 + f64::from(i)), &relaxed).await.unwrap();
            }
            let after = last.unwrap();
            assert_eq!((after.stats.runs, after.stats.successes, after.stats.failures), (3, 3, 0));
            assert_eq!(after.trust, TrustLevel::Provisional);
            assert_eq!(after.stats.last_duration_ms, Some(12.0));
            assert!((after.stats.total_duration_ms - 33.0).abs() < 1e-9);
            let failed = s.record_run("earner", &RunRecord::now(false, 1.0), &relaxed).await.unwrap().unwrap();
            assert_eq!((failed.stats.runs, failed.stats.failures), (4, 1));
            assert_eq!(s.get("earner").await.unwrap().unwrap(), failed);
            assert_eq!(s.record_run("missing", &RunRecord::now(true, 1.0), &relaxed).await.unwrap(), None);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$m])*
        async fn concurrent_runs_lose_no_increment() {
            let s = storage().await;
            s.save(&skill("hot", 1), Expect::Absent).await.unwrap();
            let strategy = TrustStrategy::default();
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        // Each task alternates success and failure, so in any interleaving no
                        // prefix of 10 or more runs reaches 90 % success (at most 70 %): the
                        // trust level cannot depend on the scheduling.
                        for i in 0..25 {
                            s.record_run("hot", &RunRecord::now((t + i) % 2 != 0, 1.0), &strategy).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let hot = s.get("hot").await.unwrap().unwrap();
            assert_eq!(hot.stats.runs, 200);
            assert_eq!(hot.stats.successes + hot.stats.failures, 200);
            assert_eq!(hot.stats.failures, 100);
            assert_eq!(hot.trust, TrustLevel::Untrusted, "50 % success does not reach provisional");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$m])*
        async fn hostile_names_are_refused() {
            let s = storage().await;
            for bad in ["..", "../escape", "a/b", "foo/../bar", "/abs", "win\\seg", "", "UPPER", "skill_x"] {
                assert!(matches!(s.get(bad).await, Err(SkillError::InvalidName { .. })), "get {bad:?}");
                assert!(matches!(s.delete(bad).await, Err(SkillError::InvalidName { .. })), "delete {bad:?}");
                let mut k = skill("placeholder", 1);
                k.name = bad.into();
                assert!(s.save(&k, Expect::Absent).await.is_err(), "save {bad:?}");
            }
            let mut huge = skill("huge", 1);
            huge.code = "x".repeat(code_mode_skills::MAX_CODE_BYTES + 1);
            assert!(matches!(s.save(&huge, Expect::Absent).await, Err(SkillError::Invalid { .. })));
            assert!(s.list().await.unwrap().skills.is_empty());
        }
    };
}
