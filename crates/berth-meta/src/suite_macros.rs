//! How a backend's tests run the shared suites: one `#[tokio::test]` per named case, each
//! on a fresh, empty store from the backend's factory, so `cargo nextest list` shows every
//! case and a failure names its case. Compiled only for tests (`cfg(test)` here, the
//! `suite` feature for other crates' dev-dependencies), never into the release binary.
//!
//! The factory is an `async fn() -> F` (or a path to one) where `F` implements the
//! fixture traits below and keeps whatever the store needs alive (a temporary directory,
//! a database) until it is dropped at the end of the case.
//!
//! ```ignore
//! async fn fresh() -> MyFixture { ... }
//! berth_meta::meta_store_suite!(fresh);      // MetaFixture: suite, gc_suite, archive_suite
//! berth_meta::settings_store_suite!(fresh);  // SettingsFixture
//! berth_meta::lifecycle_store_suite!(fresh); // LifecycleFixture
//! berth_meta::iam_store_suite!(fresh);       // IamFixture
//! ```

use crate::{EcrSettingsStore, IamStore, LifecycleStore, MetaStore};

/// A fresh, empty metadata store seen as a [`MetaStore`].
pub trait MetaFixture: Send + Sync {
    fn meta(&self) -> &dyn MetaStore;
}

/// The same database seen as a [`MetaStore`] and an [`EcrSettingsStore`].
pub trait SettingsFixture: MetaFixture {
    fn settings(&self) -> &dyn EcrSettingsStore;
}

/// The same database seen as a [`MetaStore`] and a [`LifecycleStore`].
pub trait LifecycleFixture: MetaFixture {
    fn lifecycle(&self) -> &dyn LifecycleStore;
}

/// A fresh, empty [`IamStore`].
pub trait IamFixture: Send + Sync {
    fn iam(&self) -> &dyn IamStore;
}

/// One `#[tokio::test]` per listed case, in a module named after the suite.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_tests {
    ($make:path, $module:ident, |$f:ident| $args:tt, [$($case:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let $f = $make().await;
                    $crate::$module::$case $args.await;
                }
            )*
        }
    };
}

/// The [`MetaStore`] suites (`suite`, `gc_suite`, `archive_suite`), one test per case; the
/// factory's value implements [`MetaFixture`].
#[macro_export]
macro_rules! meta_store_suite {
    ($make:path) => {
        $crate::__suite_tests!(
            $make,
            suite,
            |f| ($crate::suite_macros::MetaFixture::meta(&f)),
            [
                uploads_blobs_manifests_tags_and_events,
                repositories,
                images,
                tag_mutability,
                pull_times,
                account_namespaces,
            ]
        );
        $crate::__suite_tests!(
            $make,
            gc_suite,
            |f| ($crate::suite_macros::MetaFixture::meta(&f)),
            [
                marks_sweeps_pins_and_rechecked_deletes,
                a_deletion_in_progress_refuses_pins_and_commits,
            ]
        );
        $crate::__suite_tests!(
            $make,
            archive_suite,
            |f| ($crate::suite_macros::MetaFixture::meta(&f)),
            [archive_drop_restore_and_sweep,]
        );
    };
}

/// The [`EcrSettingsStore`] suite, one test per case; the factory's value implements
/// [`SettingsFixture`].
#[macro_export]
macro_rules! settings_store_suite {
    ($make:path) => {
        $crate::__suite_tests!(
            $make,
            settings_suite,
            |f| (
                $crate::suite_macros::MetaFixture::meta(&f),
                $crate::suite_macros::SettingsFixture::settings(&f)
            ),
            [
                repository_policies,
                registry_policies,
                resource_tags,
                account_settings,
                templates,
                provisioning,
                deleting_a_repository_takes_its_settings,
            ]
        );
    };
}

/// The [`LifecycleStore`] suite, one test per case; the factory's value implements
/// [`LifecycleFixture`].
#[macro_export]
macro_rules! lifecycle_store_suite {
    ($make:path) => {
        $crate::__suite_tests!(
            $make,
            lifecycle_suite,
            |f| (
                $crate::suite_macros::MetaFixture::meta(&f),
                $crate::suite_macros::LifecycleFixture::lifecycle(&f)
            ),
            [
                policies,
                facts,
                previews,
                expiry,
                deleting_a_repository_takes_its_policy_and_preview,
            ]
        );
    };
}

/// The [`IamStore`] suite, one test per case; the factory's value implements [`IamFixture`].
#[macro_export]
macro_rules! iam_store_suite {
    ($make:path) => {
        $crate::__suite_tests!(
            $make,
            iam_suite,
            |f| ($crate::suite_macros::IamFixture::iam(&f)),
            [
                accounts_and_root_keys,
                users_keys_policies_groups_and_deletion_order,
            ]
        );
    };
}
