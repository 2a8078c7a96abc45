//! PostgreSQL (Aurora) over TLS, the server certificate verified against a CA bundle the operator
//! configures (`db/ca-bundle-path`; for Aurora, AWS's RDS bundle from
//! https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem — it is not in the public
//! root set, so the functions ship it). One connection per endpoint per container, opened on
//! first use and reopened when closed; every statement has a timeout.

use crate::config::{Params, SecretValue};
use crate::error::FnError;
use payments_core::migrations::MIGRATIONS;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub dbname: String,
}

/// Where the database is, from Parameter Store.
#[derive(Debug, Clone)]
pub struct Settings {
    pub writer: Endpoint,
    pub reader: Endpoint,
    pub ca_bundle: PathBuf,
}

impl Settings {
    pub fn from_params(p: &Params) -> Result<Settings, FnError> {
        let port: u16 = p.number("db/port")?;
        let dbname = p.get_or("db/name", "payments").to_string();
        let endpoint = |name: &str| -> Result<Endpoint, FnError> {
            Ok(Endpoint { host: p.get(name)?.to_string(), port, dbname: dbname.clone() })
        };
        let ca = PathBuf::from(p.get_or("db/ca-bundle-path", "rds-global-bundle.pem"));
        // Relative to the function's own directory (/var/task on Lambda), where packaging puts it.
        let ca_bundle = if ca.is_absolute() {
            ca
        } else {
            std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join(&ca))).unwrap_or(ca)
        };
        Ok(Settings { writer: endpoint("db/writer-endpoint")?, reader: endpoint("db/reader-endpoint")?, ca_bundle })
    }
}

/// `{"username", "password"}` of a database secret (other keys ignored). Never printed.
#[derive(Clone, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ username: {:?}, password: <redacted> }}", self.username)
    }
}

impl Credentials {
    pub fn from_secret(secret: &SecretValue) -> Result<Credentials, FnError> {
        // The serde error is not passed on: it could quote the value.
        serde_json::from_str(secret.expose())
            .map_err(|_| FnError::Config("the database secret is not JSON with username and password".into()))
    }
}

/// A rustls client configuration trusting only the certificates of the bundle.
pub fn tls(ca_bundle: &Path) -> Result<MakeRustlsConnect, FnError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_bundle)
        .map_err(|_| FnError::Config(format!("cannot read the CA bundle {}", ca_bundle.display())))?;
    for cert in certs {
        let cert = cert.map_err(|_| FnError::Config(format!("the CA bundle {} is not PEM", ca_bundle.display())))?;
        roots.add(cert).map_err(|_| FnError::Config(format!("a certificate of {} is invalid", ca_bundle.display())))?;
    }
    if roots.is_empty() {
        return Err(FnError::Config(format!("the CA bundle {} holds no certificate", ca_bundle.display())));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|_| FnError::Config("TLS versions".into()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Connects with TLS required and verified; the connection is driven on its own task.
pub async fn connect(endpoint: &Endpoint, creds: &Credentials, tls: &MakeRustlsConnect) -> Result<Client, FnError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&endpoint.host)
        .port(endpoint.port)
        .dbname(&endpoint.dbname)
        .user(&creds.username)
        .password(&creds.password)
        .ssl_mode(SslMode::Require)
        .connect_timeout(Duration::from_secs(3))
        .keepalives_idle(Duration::from_secs(30))
        .application_name("payments")
        .options("-c statement_timeout=5000 -c lock_timeout=2000");
    let (client, connection) = config.connect(tls.clone()).await.map_err(|e| FnError::db("connect", &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %FnError::db("connection", &e), "database connection ended");
        }
    });
    Ok(client)
}

/// Whether the server refused the credentials (they may have just been rotated).
pub fn is_auth_failure(err: &FnError) -> bool {
    matches!(err, FnError::Db { detail, .. }
        if detail.ends_with(SqlState::INVALID_PASSWORD.code())
            || detail.ends_with(SqlState::INVALID_AUTHORIZATION_SPECIFICATION.code()))
}

/// One lazily opened connection, reopened when the server or network closed it.
#[derive(Default)]
pub struct Connection {
    slot: Mutex<Option<Arc<Client>>>,
}

impl Connection {
    pub async fn get(
        &self,
        endpoint: &Endpoint,
        creds: &Credentials,
        tls: &MakeRustlsConnect,
    ) -> Result<Arc<Client>, FnError> {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = Arc::new(connect(endpoint, creds, tls).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Drop the connection (after an error that may have left it unusable).
    pub async fn reset(&self) {
        *self.slot.lock().await = None;
    }
}

/// Arbitrary but fixed: every migrator of this schema takes the same advisory lock.
const MIGRATION_LOCK: i64 = 0x7061_796d_656e_7473; // "payments"

/// Applies the migrations the database lacks, each in its own transaction, under a session
/// advisory lock so concurrent containers do not race; refuses to go on when an applied
/// migration's checksum differs from the file's. Returns the versions it applied.
pub async fn migrate(client: &Client) -> Result<Vec<i32>, FnError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(|e| FnError::db("lock", &e))?;
    let result = migrate_locked(client).await;
    // Released by the session's end too; unlocking explicitly lets the connection be reused.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let applied = result?;
    unlocked.map_err(|e| FnError::db("unlock", &e))?;
    Ok(applied)
}

async fn migrate_locked(client: &Client) -> Result<Vec<i32>, FnError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(|e| FnError::db("migrations table", &e))?;
    let rows = client
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await
        .map_err(|e| FnError::db("read migrations", &e))?;
    let applied: std::collections::BTreeMap<i32, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut done = Vec::new();
    for m in MIGRATIONS {
        match applied.get(&m.version) {
            Some(sum) if *sum == m.checksum() => continue,
            Some(_) => {
                return Err(FnError::Config(format!(
                    "migration {} ({}) was edited after it was applied: add a new migration instead",
                    m.version, m.name
                )))
            }
            None => {}
        }
        // One simple-query batch runs as one transaction: the migration and its record commit
        // together or not at all.
        let batch = format!(
            "BEGIN;\n{}\n;INSERT INTO schema_migrations (version, name, checksum) VALUES ({}, '{}', '{}');\nCOMMIT;",
            m.sql,
            m.version,
            m.name,
            m.checksum()
        );
        if let Err(e) = client.batch_execute(&batch).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(FnError::db("migration", &e));
        }
        tracing::info!(version = m.version, name = m.name, "applied migration");
        done.push(m.version);
    }
    Ok(done)
}
