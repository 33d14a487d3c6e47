//! The schema migrations, compiled into the binary (an image carries no
//! migrations folder).
//!
//! This is what `sqlx::migrate!` does, without the proc macro: sqlx's macros
//! compile both database drivers, SQLite's C sources included, a second time
//! for the build host, which made a cold build minutes longer for two files.

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// `(version, description, sql)`, as `migrate!` reads them from
/// `<version>_<description>.sql` (a test keeps the two in step).
#[derive(Debug, Clone, Copy)]
pub struct Embedded(pub &'static [(i64, &'static str, &'static str)]);

pub const SQLITE: Embedded =
    Embedded(&[(1, "orders and cache", include_str!("../../migrations/sqlite/0001_orders_and_cache.sql"))]);

pub const POSTGRES: Embedded =
    Embedded(&[(1, "orders and cache", include_str!("../../migrations/postgres/0001_orders_and_cache.sql"))]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    // The checksum sqlx records is over the SQL text, as with migrate!.
                    Migration::new(version, description.into(), MigrationType::Simple, sql.into(), false)
                })
                .collect())
        })
    }
}

/// A migrator over `source` (resolving embedded migrations cannot fail).
pub async fn migrator(source: Embedded) -> Migrator {
    Migrator::new(source).await.expect("embedded migrations always resolve")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the migrations folder is embedded, with the version and
    /// description its name gives, and nothing else is.
    #[test]
    fn the_embedded_migrations_are_the_folder() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for (engine, embedded) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let mut files: Vec<(i64, String, String)> = std::fs::read_dir(root.join(engine))
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|path| {
                    let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
                    let (version, description) = stem.split_once('_').unwrap();
                    (version.parse().unwrap(), description.replace('_', " "), std::fs::read_to_string(&path).unwrap())
                })
                .collect();
            files.sort();
            let listed: Vec<(i64, String, String)> =
                embedded.0.iter().map(|&(v, d, sql)| (v, d.to_string(), sql.to_string())).collect();
            assert_eq!(listed, files, "migrations/{engine} and store/migrations.rs differ");
        }
    }
}
