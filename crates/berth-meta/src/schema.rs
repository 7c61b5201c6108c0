//! The metadata schema's versions: one list for every backend.
//!
//! Each backend keeps its migrations in its own dialect (`sqlite/migrations/`,
//! `postgres/migrations/`), one file per version named `NNNN_name.sql`, and both must be
//! exactly [`SCHEMA_VERSIONS`]: a test fails if a backend gains, loses or renames one. A
//! new version is added here and to every backend in the same change. Every backend
//! refuses a database whose schema is newer than this binary with [`SchemaTooNew`].

/// (version, name) in ascending order. Append only.
pub const SCHEMA_VERSIONS: &[(i64, &str)] = &[
    (1, "init"),
    (2, "accounts_iam"),
    (3, "repository_settings"),
    (4, "image_details"),
    (5, "ecr_settings"),
    (6, "gc"),
    (7, "lifecycle"),
    (8, "archive"),
    (9, "account_namespaces"),
    (10, "jobs"),
    (11, "blob_deletions"),
];

/// The newest schema version this binary knows.
pub fn latest_version() -> i64 {
    SCHEMA_VERSIONS.last().map(|v| v.0).unwrap_or(0)
}

/// A database written by a newer Berth: refused rather than misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("database schema version {found} is newer than this binary supports ({supported}); upgrade berth")]
pub struct SchemaTooNew {
    pub found: i64,
    pub supported: i64,
}

/// `Err` when a database at schema version `found` is newer than this binary.
pub fn check_not_newer(found: i64) -> Result<(), SchemaTooNew> {
    if found > latest_version() {
        Err(SchemaTooNew {
            found,
            supported: latest_version(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (version, name) of the `NNNN_name.sql` files in a backend's migration directory.
    fn files(dir: &str) -> Vec<(i64, String)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut out: Vec<(i64, String)> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .map(|f| {
                let stem = f
                    .strip_suffix(".sql")
                    .unwrap_or_else(|| panic!("{dir}/{f}: not .sql"));
                let (n, name) = stem
                    .split_once('_')
                    .unwrap_or_else(|| panic!("{dir}/{f}: not NNNN_name.sql"));
                assert_eq!(n.len(), 4, "{dir}/{f}: four digits");
                (n.parse().unwrap(), name.to_string())
            })
            .collect();
        out.sort();
        out
    }

    fn expected() -> Vec<(i64, String)> {
        SCHEMA_VERSIONS
            .iter()
            .map(|(n, s)| (*n, s.to_string()))
            .collect()
    }

    #[test]
    fn versions_ascend_without_gaps() {
        for (i, (n, _)) in SCHEMA_VERSIONS.iter().enumerate() {
            assert_eq!(*n, i as i64 + 1);
        }
    }

    #[test]
    fn every_backend_has_exactly_the_shared_schema_versions() {
        assert_eq!(
            files("src/sqlite/migrations"),
            expected(),
            "SQLite's migrations diverge from schema::SCHEMA_VERSIONS"
        );
        assert_eq!(
            crate::sqlite::latest_version(),
            latest_version(),
            "SQLite's migration list"
        );
        assert_eq!(
            files("src/postgres/migrations"),
            expected(),
            "PostgreSQL's migrations diverge from schema::SCHEMA_VERSIONS"
        );
        let pg: Vec<(i64, String)> = crate::postgres::MIGRATIONS
            .iter()
            .map(|m| (m.0, m.1.to_string()))
            .collect();
        assert_eq!(pg, expected(), "PostgreSQL's migration list");
    }

    #[test]
    fn newer_schemas_are_refused_with_one_message() {
        assert!(check_not_newer(latest_version()).is_ok());
        let err = check_not_newer(latest_version() + 1).unwrap_err();
        assert_eq!(
            err,
            SchemaTooNew {
                found: latest_version() + 1,
                supported: latest_version()
            }
        );
        assert!(err.to_string().contains("upgrade berth"), "{err}");
    }
}
