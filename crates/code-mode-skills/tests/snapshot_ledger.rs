//! The single-use ledger suite (`code_mode::durable::SnapshotLedger`), run against core's
//! memory ledger and the skills crate's file-system and PostgreSQL storages: an id is
//! claimed once, also by racing claimers, and an expired claim is forgotten.

#![cfg(feature = "durable")]

mod common;

macro_rules! ledger_suite {
    ($make:expr) => {
        use std::sync::Arc;
        use std::time::{Duration, SystemTime};

        use code_mode::durable::SnapshotLedger;

        async fn ledger() -> Arc<dyn SnapshotLedger> {
            $make.await
        }

        fn later() -> SystemTime {
            SystemTime::now() + Duration::from_secs(600)
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_id_is_claimed_once() {
            let l = ledger().await;
            assert!(l.claim([1; 16], later()).await.unwrap());
            assert!(!l.claim([1; 16], later()).await.unwrap());
            assert!(l.claim([2; 16], later()).await.unwrap());
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn racing_claimers_win_once() {
            let l = ledger().await;
            for round in 0..10u8 {
                let claims: Vec<_> = (0..8)
                    .map(|_| {
                        let l = l.clone();
                        tokio::spawn(async move { l.claim([round; 16], later()).await.unwrap() })
                    })
                    .collect();
                let mut won = 0;
                for c in claims {
                    if c.await.unwrap() {
                        won += 1;
                    }
                }
                assert_eq!(won, 1, "round {round}");
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn expired_claims_are_forgotten() {
            let l = ledger().await;
            let soon = SystemTime::now() + Duration::from_millis(200);
            assert!(l.claim([9; 16], soon).await.unwrap());
            assert!(!l.claim([9; 16], soon).await.unwrap());
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            // A later claim clears the expired one, so the id (its snapshot refused by the
            // vault as expired anyway) no longer takes room.
            assert!(l.claim([8; 16], later()).await.unwrap());
            assert!(l.claim([9; 16], later()).await.unwrap());
        }
    };
}

mod memory {
    ledger_suite!(async {
        Arc::new(code_mode::durable::MemoryLedger::default()) as Arc<dyn SnapshotLedger>
    });
}

mod filesystem {
    ledger_suite!(async {
        let dir = std::env::temp_dir().join(format!(
            "code-mode-ledger-{}-{:?}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        Arc::new(code_mode_skills::FileSystemStorage::new(dir).unwrap()) as Arc<dyn SnapshotLedger>
    });
}

#[cfg(feature = "postgres")]
mod postgres {
    ledger_suite!(async {
        Arc::new(crate::common::postgres::fresh_database().await) as Arc<dyn SnapshotLedger>
    });
}
