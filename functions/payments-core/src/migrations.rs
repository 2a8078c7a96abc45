//! The database's versioned SQL migrations (files under `migrations/`), in order. The runner
//! (payments-runtime's `db::migrate`) applies the ones a database lacks under an advisory lock and
//! refuses to run when an applied one has been edited since (its checksum differs).
//!
//! Migrations are expand-only: during a blue/green shift the other colour's code runs against the
//! same schema, so a migration may add (tables, columns with defaults, roles, grants) but never
//! remove or rename what a previous version's code uses.

use sha2::{Digest, Sha256};

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
    /// Creates or alters roles, so it runs as the connecting (master) user. Every other migration
    /// runs under `SET ROLE` [`MIGRATOR_ROLE`] once that role exists, so what it creates is owned
    /// by the owner role, not by the master.
    pub manages_roles: bool,
}

impl Migration {
    /// SHA-256 of the SQL, hex: recorded with the version so an edited migration is noticed.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// The role that owns every schema object (NOLOGIN; migration 3).
pub const MIGRATOR_ROLE: &str = "payments_migrator";
/// The process function's login (IAM database authentication; migration 3).
pub const PROCESS_LOGIN: &str = "payments_process";

/// The schema version this code needs: the last migration it embeds.
pub const LATEST: i32 = MIGRATIONS.len() as i32;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "merchants_customers_ledger",
        sql: include_str!("../migrations/0001_merchants_customers_ledger.sql"),
        manages_roles: false,
    },
    Migration {
        version: 2,
        name: "ledger_must_balance",
        sql: include_str!("../migrations/0002_ledger_must_balance.sql"),
        manages_roles: false,
    },
    Migration {
        version: 3,
        name: "least_privilege_logins",
        sql: include_str!("../migrations/0003_least_privilege_logins.sql"),
        manages_roles: true,
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

    #[test]
    fn the_logins_migration_names_the_roles_the_code_uses_and_grants_no_ledger_change() {
        let m = MIGRATIONS.iter().find(|m| m.manages_roles).expect("a migration makes the roles");
        assert_eq!(LATEST, MIGRATIONS.last().unwrap().version);
        for role in [MIGRATOR_ROLE, PROCESS_LOGIN, "rds_iam"] {
            assert!(m.sql.contains(role), "{role}");
        }
        let sql = m.sql.to_uppercase();
        for forbidden in ["GRANT UPDATE", "GRANT DELETE", "GRANT TRUNCATE", "GRANT ALL", "DROP "] {
            assert!(!sql.contains(forbidden), "{forbidden}");
        }
        // Only the one migration that must act as the master does.
        assert_eq!(MIGRATIONS.iter().filter(|m| m.manages_roles).count(), 1);
    }
}
