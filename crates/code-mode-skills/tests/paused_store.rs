//! The paused-execution store behaviour suite (`code_mode_chat::PausedStore`), run against
//! the chat crate's memory store and the skills crate's file-system and PostgreSQL
//! storages: entries round-trip whole, are handed out once (also to racing takers), are
//! replaced by a later put, and are gone once expired.

mod common;

macro_rules! paused_suite {
    ($make:expr) => {
        use std::sync::Arc;
        use std::time::{Duration, SystemTime};

        use code_mode_chat::PausedStore;

        async fn store() -> Arc<dyn PausedStore> {
            $make.await
        }

        fn later() -> SystemTime {
            SystemTime::now() + Duration::from_secs(600)
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_entry_round_trips_once() {
            let s = store().await;
            let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
            s.put("call_1", bytes.clone(), later()).await.unwrap();
            s.put("call 2/../ü", b"other".to_vec(), later())
                .await
                .unwrap();
            assert_eq!(s.take("call_1").await.unwrap(), Some(bytes));
            assert_eq!(s.take("call_1").await.unwrap(), None);
            assert_eq!(
                s.take("call 2/../ü").await.unwrap(),
                Some(b"other".to_vec())
            );
            assert_eq!(s.take("never").await.unwrap(), None);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_later_put_replaces_the_entry() {
            let s = store().await;
            s.put("k", b"first".to_vec(), later()).await.unwrap();
            s.put("k", b"second".to_vec(), later()).await.unwrap();
            assert_eq!(s.take("k").await.unwrap(), Some(b"second".to_vec()));
            assert_eq!(s.take("k").await.unwrap(), None);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_expired_entry_is_gone() {
            let s = store().await;
            let past = SystemTime::now() - Duration::from_secs(1);
            s.put("old", b"x".to_vec(), past).await.unwrap();
            assert_eq!(s.take("old").await.unwrap(), None);
            s.put(
                "soon",
                b"y".to_vec(),
                SystemTime::now() + Duration::from_millis(300),
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            assert_eq!(s.take("soon").await.unwrap(), None);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn racing_takers_get_an_entry_once() {
            let s = store().await;
            for round in 0..10 {
                let key = format!("race_{round}");
                s.put(&key, vec![round as u8; 1000], later()).await.unwrap();
                let takers: Vec<_> = (0..8)
                    .map(|_| {
                        let s = s.clone();
                        let key = key.clone();
                        tokio::spawn(async move { s.take(&key).await.unwrap() })
                    })
                    .collect();
                let mut got = 0;
                for t in takers {
                    if let Some(bytes) = t.await.unwrap() {
                        assert_eq!(bytes, vec![round as u8; 1000]);
                        got += 1;
                    }
                }
                assert_eq!(got, 1, "round {round}");
            }
        }
    };
}

mod memory {
    paused_suite!(async {
        Arc::new(code_mode_chat::MemoryPausedStore::default()) as Arc<dyn PausedStore>
    });
}

mod filesystem {
    paused_suite!(async {
        let dir = std::env::temp_dir().join(format!(
            "code-mode-paused-{}-{:?}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        Arc::new(code_mode_skills::FileSystemStorage::new(dir).unwrap()) as Arc<dyn PausedStore>
    });

    #[tokio::test]
    async fn an_overlong_key_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("code-mode-paused-key-{}", std::process::id()));
        let s = code_mode_skills::FileSystemStorage::new(&dir).unwrap();
        let err = s
            .put(&"k".repeat(500), b"x".to_vec(), later())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("1 to 120 bytes, not 500"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    paused_suite!(async {
        Arc::new(crate::common::postgres::fresh_database().await) as Arc<dyn PausedStore>
    });
}
