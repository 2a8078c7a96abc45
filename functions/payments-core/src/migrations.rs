//! The database's versioned SQL migrations (files under `migrations/`), in order. The runner
//! (payments-runtime's `db::migrate`) applies the ones a database lacks under an advisory lock and
//! refuses to run when an applied one has been edited since (its checksum differs).

use sha2::{Digest, Sha256};

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the SQL, hex: recorded with the version so an edited migration is noticed.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "merchants_customers_ledger",
        sql: include_str!("../migrations/0001_merchants_customers_ledger.sql"),
    },
    Migration {
        version: 2,
        name: "ledger_must_balance",
        sql: include_str!("../migrations/0002_ledger_must_balance.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_up_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
    }

    #[test]
    fn every_file_in_the_migrations_folder_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let files =
            std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some()).count();
        assert_eq!(files, MIGRATIONS.len());
    }
}
