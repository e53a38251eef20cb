//! What only the file-system backend has: files a person can read, corrupt files, several
//! processes at once, and writers killed mid-write.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use code_mode_skills::{Expect, FileSystemStorage, SkillError, SkillStorage};
use common::skill;

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "code-mode-skills-{tag}-{}-{nanos}",
        std::process::id()
    ))
}

fn stress(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_code-mode-skills-stress"));
    c.args(args);
    c
}

#[tokio::test]
async fn files_are_human_readable() {
    let dir = temp_dir("readable");
    let s = FileSystemStorage::new(&dir).unwrap();
    let k = skill("readable", 1);
    s.save(&k, Expect::Absent).await.unwrap();
    let code = std::fs::read_to_string(dir.join("readable.v1.ts")).unwrap();
    assert_eq!(code, k.code);
    let meta = std::fs::read_to_string(dir.join("readable.json")).unwrap();
    assert!(meta.contains("\n  \"name\": \"readable\""), "{meta}");
    assert!(meta.contains("\"codeFile\": \"readable.v1.ts\""));
    assert!(
        !meta.contains("return {"),
        "code is not duplicated in the metadata"
    );
    // A new version replaces the code file.
    s.save(&skill("readable", 2), Expect::Version(1))
        .await
        .unwrap();
    assert!(!dir.join("readable.v1.ts").exists());
    assert!(dir.join("readable.v2.ts").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn corrupt_files_are_reported_and_skipped() {
    let dir = temp_dir("corrupt");
    let s = FileSystemStorage::new(&dir).unwrap();
    for name in ["good", "bad_json", "no_code", "escaping", "renamed"] {
        s.save(&skill(name, 1), Expect::Absent).await.unwrap();
    }
    std::fs::write(dir.join("bad_json.json"), "{ not json").unwrap();
    std::fs::remove_file(dir.join("no_code.v1.ts")).unwrap();
    let escaping = std::fs::read_to_string(dir.join("escaping.json"))
        .unwrap()
        .replace("escaping.v1.ts", "../../etc/passwd");
    std::fs::write(dir.join("escaping.json"), escaping).unwrap();
    std::fs::rename(dir.join("renamed.json"), dir.join("other_name.json")).unwrap();
    std::fs::write(dir.join("Not-A-Name.json"), "{}").unwrap();

    let list = s.list().await.unwrap();
    let names: Vec<&str> = list.skills.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["good"]);
    assert_eq!(list.skipped.len(), 5, "{:?}", list.skipped);
    assert!(
        list.skipped
            .iter()
            .all(|e| matches!(e, SkillError::Corrupt { .. }))
    );
    assert!(matches!(
        s.get("bad_json").await,
        Err(SkillError::Corrupt { .. })
    ));
    assert!(matches!(
        s.get("escaping").await,
        Err(SkillError::Corrupt { .. })
    ));
    // A corrupt entry can be replaced by a new registration.
    s.save(&skill("bad_json", 1), Expect::Absent).await.unwrap();
    assert!(s.get("bad_json").await.unwrap().is_some());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_lose_nothing() {
    let dir = temp_dir("processes");
    let s = FileSystemStorage::new(&dir).unwrap();
    s.save(&skill("shared", 1), Expect::Absent).await.unwrap();
    let target = dir.to_string_lossy().into_owned();
    let children: Vec<Child> = (0..8)
        .map(|w| {
            stress(&["fs", &target, &w.to_string(), "200"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let list = s.list().await.unwrap();
    assert!(list.skipped.is_empty(), "{:?}", list.skipped);
    assert_eq!(list.skills.len(), 8 * 100 + 1);
    let shared = s.get("shared").await.unwrap().unwrap();
    assert_eq!(shared.stats.runs, 800, "lost stat updates");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_write_leaves_a_readable_version() {
    let dir = temp_dir("sigkill");
    let s = FileSystemStorage::new(&dir).unwrap();
    let target = dir.to_string_lossy().into_owned();
    let mut seen_versions = Vec::new();
    for round in 0..8u64 {
        let mut child = stress(&["fs", &target, "0", "rewrite"]).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(40 + round * 17)).await;
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let list = s.list().await.unwrap();
        assert!(list.skipped.is_empty(), "round {round}: {:?}", list.skipped);
        if let Some(v) = s.get("victim").await.unwrap() {
            // Metadata and code belong to the same version.
            assert!(
                v.code.starts_with(&format!("// version {}\n", v.version)),
                "round {round}: version {} with code {:?}",
                v.version,
                &v.code[..20]
            );
            seen_versions.push(v.version);
        }
    }
    assert!(
        seen_versions.last().copied().unwrap_or(0) > 1,
        "the writer made no progress: {seen_versions:?}"
    );
    assert!(seen_versions.windows(2).all(|w| w[0] <= w[1]));
    let _ = std::fs::remove_dir_all(dir);
}
