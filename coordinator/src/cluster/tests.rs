//! The shared CA and the registry, on both backends: a temp-dir SQLite file and a
//! throwaway PostgreSQL cluster.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

/// Runs `check` against a fresh SQLite store and, when PostgreSQL is installed, a fresh
/// PostgreSQL one.
async fn on_both<F, Fut>(test: &str, check: F)
where
    F: Fn(Arc<dyn ClusterStore>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temp dir");
    let sqlite = SqliteStore::open(&dir.path().join("t.db"))
        .await
        .expect("a SQLite store");
    check(Arc::new(sqlite)).await;
    if let Some(cluster) = segwire_testkit::postgres::Cluster::start(test) {
        let pg = PgStore::open_url(&cluster.create_database())
            .await
            .expect("a PostgreSQL store");
        check(Arc::new(pg)).await;
    }
}

fn files(dir: &Path) -> (bool, bool) {
    (dir.join("ca.key").exists(), dir.join("ca.crt").exists())
}

#[tokio::test]
async fn one_ca_for_every_coordinator_and_a_different_one_is_refused() {
    on_both("one_ca_for_every_coordinator", |store| async move {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let first = shared_ca(a.path(), store.as_ref())
            .await
            .expect("first start");
        assert!(!first.joined);
        assert_eq!(
            files(a.path()),
            (true, true),
            "the first keeps key and cert"
        );

        let later = shared_ca(b.path(), store.as_ref())
            .await
            .expect("a later coordinator");
        assert!(later.joined);
        assert_eq!(later.ca.pin, first.ca.pin);
        assert_eq!(
            files(b.path()),
            (false, true),
            "a later one writes only ca.crt"
        );
        // Restarts of either keep their role.
        assert!(!shared_ca(a.path(), store.as_ref()).await.unwrap().joined);
        assert!(shared_ca(b.path(), store.as_ref()).await.unwrap().joined);

        pki::write_local(c.path(), &Ca::new().unwrap(), true).unwrap();
        let Err(err) = shared_ca(c.path(), store.as_ref()).await else {
            panic!("another CA in the data directory is refused");
        };
        let err = err.to_string();
        assert!(err.contains("other than the one in the database"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn an_upgraded_coordinator_uploads_its_ca_and_racing_starts_end_with_one() {
    on_both(
        "an_upgraded_coordinator_uploads_its_ca",
        |store| async move {
            let old = tempfile::tempdir().unwrap();
            let ca = Ca::new().unwrap();
            pki::write_local(old.path(), &ca, true).unwrap();
            let up = shared_ca(old.path(), store.as_ref()).await.expect("upload");
            assert_eq!(
                up.ca.pin, ca.pin,
                "the pin of the single coordinator is kept"
            );
            assert!(!up.joined);
        },
    )
    .await;
    on_both("racing_starts_end_with_one_ca", |store| async move {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let starts = dirs.iter().map(|d| shared_ca(d.path(), store.as_ref()));
        let all = futures::future::join_all(starts).await;
        let pins: Vec<_> = all
            .into_iter()
            .map(|r| r.expect("a start").ca.pin)
            .collect();
        assert!(pins.windows(2).all(|w| w[0] == w[1]), "{pins:?}");
    })
    .await;
}

#[tokio::test]
async fn the_registry_lists_live_coordinators_first_own_and_forgets_a_clean_shutdown() {
    on_both("the_registry_lists_live_coordinators", |store| async move {
        let a = Registry::register(store.clone(), "a".into(), vec!["https://a:7443".into()])
            .await
            .unwrap();
        let b = Registry::register(
            store.clone(),
            "b".into(),
            vec!["https://b:7443".into(), "https://[2001:db8::2]:7443".into()],
        )
        .await
        .unwrap();
        a.beat().await.unwrap();
        assert_eq!(
            a.urls(),
            [
                "https://a:7443",
                "https://b:7443",
                "https://[2001:db8::2]:7443"
            ]
        );
        assert_eq!(
            b.urls()[..2],
            ["https://b:7443", "https://[2001:db8::2]:7443"]
        );
        assert!(b.urls().contains(&"https://a:7443".to_string()));
        // A coordinator not seen for LIVE_FOR is not live.
        store
            .heartbeat("dead", &["https://dead:7443".into()], 1, now() - 60)
            .await
            .unwrap();
        a.beat().await.unwrap();
        assert!(!a.urls().contains(&"https://dead:7443".to_string()));
        b.deregister().await;
        a.beat().await.unwrap();
        assert_eq!(a.urls(), ["https://a:7443"]);
    })
    .await;
}
