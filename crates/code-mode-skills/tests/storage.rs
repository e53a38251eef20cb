//! The storage behaviour suite, run against every backend. PostgreSQL runs when the
//! `postgres` feature is on (`cargo xtask test` starts a server and sets
//! `CODE_MODE_TEST_POSTGRES`); MongoDB cases are ignored unless run with `--ignored` and
//! `MONGODB_URI` (no MongoDB server can be installed on the CI machine).

mod common;

mod memory {
    crate::storage_suite!(async {
        Arc::new(code_mode_skills::InMemoryStorage::new()) as Arc<dyn SkillStorage>
    });
}

mod filesystem {
    crate::storage_suite!(async {
        let dir = std::env::temp_dir().join(format!("code-mode-skills-suite-{}", uuid()));
        Arc::new(code_mode_skills::FileSystemStorage::new(dir).unwrap()) as Arc<dyn SkillStorage>
    });

    fn uuid() -> String {
        format!(
            "{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        )
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    crate::storage_suite!(async {
        Arc::new(crate::common::postgres::fresh_database().await) as Arc<dyn SkillStorage>
    });
}

#[cfg(feature = "mongo")]
mod mongo {
    crate::storage_suite!(
        async {
            let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| panic!("MONGODB_URI is not set"));
            let db = format!("skills_{}_{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
            Arc::new(code_mode_skills::MongoStorage::connect(&uri, &db).await.unwrap()) as Arc<dyn SkillStorage>
        },
        #[ignore = "needs a MongoDB server: MONGODB_URI=mongodb://... cargo test -p code-mode-skills --features mongo -- --ignored"]
    );
}

/// Eight processes registering and counting runs against one PostgreSQL database.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_lose_nothing_on_postgres() {
    use code_mode_skills::{Expect, PostgresStorage, SkillStorage};
    let base = common::postgres::server();
    let name = format!("skills_procs_{}", std::process::id());
    let (admin, conn) =
        tokio_postgres::connect(&format!("{base} dbname=postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let config = format!("{base} dbname={name}");
    let storage = PostgresStorage::connect(&config).await.unwrap();
    assert_eq!(storage.schema_version().await.unwrap(), 3);
    storage
        .save(&common::skill("shared", 1), Expect::Absent)
        .await
        .unwrap();
    let children: Vec<_> = (0..8)
        .map(|w| {
            std::process::Command::new(env!("CARGO_BIN_EXE_code-mode-skills-stress"))
                .args(["postgres", &config, &w.to_string(), "200"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let list = storage.list().await.unwrap();
    assert_eq!(list.skills.len(), 801);
    assert_eq!(
        storage.get("shared").await.unwrap().unwrap().stats.runs,
        800
    );
    // Migrations are idempotent: a second connection finds the schema in place.
    let again = PostgresStorage::connect(&config).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 3);
}
