//! The shared suites on PostgreSQL: one named test per case, each on a fresh database of
//! the throwaway cluster (`berth-testkit`), exactly as the SQLite backend runs them.

use berth_testkit::postgres::{shared, PgDatabase};

use super::{PgDb, PgIamStore, PgMetaStore, PgOptions};
use crate::secrets::MasterKey;

struct Fixture {
    store: PgMetaStore,
    iam: PgIamStore,
    // Dropped last: the database goes when the case ends.
    _db: PgDatabase<'static>,
}

async fn fresh() -> Fixture {
    let db = shared().create_database().unwrap();
    let pool = PgDb::connect(&PgOptions::new(db.url())).await.unwrap();
    Fixture {
        store: PgMetaStore::new(pool.clone()),
        iam: PgIamStore::new(pool, MasterKey::generate()),
        _db: db,
    }
}

impl crate::suite_macros::MetaFixture for Fixture {
    fn meta(&self) -> &dyn crate::MetaStore {
        &self.store
    }
}
impl crate::suite_macros::SettingsFixture for Fixture {
    fn settings(&self) -> &dyn crate::EcrSettingsStore {
        &self.store
    }
}
impl crate::suite_macros::LifecycleFixture for Fixture {
    fn lifecycle(&self) -> &dyn crate::LifecycleStore {
        &self.store
    }
}
impl crate::suite_macros::IamFixture for Fixture {
    fn iam(&self) -> &dyn crate::IamStore {
        &self.iam
    }
}

crate::meta_store_suite!(fresh);
crate::settings_store_suite!(fresh);
crate::lifecycle_store_suite!(fresh);
crate::iam_store_suite!(fresh);
