//! `code-mode-skills-stress`: a load generator for skill storage backends, used by the
//! multi-process tests and handy for checking a deployment.
//!
//! ```text
//! code-mode-skills-stress fs DIR WORKER OPS          # OPS/2 registrations + OPS/2 runs of `shared`
//! code-mode-skills-stress postgres CONFIG WORKER OPS # the same on PostgreSQL (feature `postgres`)
//! code-mode-skills-stress fs DIR WORKER rewrite      # replaces `victim` with new versions forever
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use code_mode_skills::{
    Expect, FileSystemStorage, RunRecord, Skill, SkillStats, SkillStorage, TrustLevel,
    TrustStrategy, now_rfc3339,
};
use serde_json::json;

fn skill(name: &str, version: u32, filler: usize) -> Skill {
    let now = now_rfc3339();
    Skill {
        id: format!("id-{name}"),
        name: name.into(),
        description: format!("stress skill {name}"),
        // The version is written in the code too, so a reader can check they match.
        code: format!(
            "// version {version}\n// {}\nreturn {version};",
            "x".repeat(filler)
        ),
        input_schema: json!({"type": "object"}),
        output_schema: json!({"type": "number"}),
        usage_hints: vec![],
        depends_on: vec![],
        stats: SkillStats::default(),
        trust: TrustLevel::Untrusted,
        version,
        created_at: now.clone(),
        updated_at: now,
    }
}

async fn open(backend: &str, target: &str) -> Result<Arc<dyn SkillStorage>, String> {
    match backend {
        "fs" => Ok(Arc::new(
            FileSystemStorage::new(target).map_err(|e| e.to_string())?,
        )),
        #[cfg(feature = "postgres")]
        "postgres" => Ok(Arc::new(
            code_mode_skills::PostgresStorage::connect(target)
                .await
                .map_err(|e| e.to_string())?,
        )),
        other => Err(format!("unknown or disabled backend {other:?}")),
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    let [backend, target, worker, ops] = args else {
        return Err("usage: code-mode-skills-stress fs|postgres TARGET WORKER OPS|rewrite".into());
    };
    let storage = open(backend, target).await?;
    let strategy = TrustStrategy::default();
    if ops == "rewrite" {
        loop {
            let current = storage.get("victim").await.map_err(|e| e.to_string())?;
            let version = current.map_or(0, |s| s.version);
            let expect = if version == 0 {
                Expect::Absent
            } else {
                Expect::Version(version)
            };
            storage
                .save(&skill("victim", version + 1, 20_000), expect)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let ops: usize = ops.parse().map_err(|_| "OPS must be a number".to_owned())?;
    for i in 0..ops / 2 {
        storage
            .save(&skill(&format!("w{worker}_s{i}"), 1, 0), Expect::Absent)
            .await
            .map_err(|e| e.to_string())?;
        storage
            .record_run("shared", &RunRecord::now(true, 1.0), &strategy)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("skill `shared` is missing")?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
