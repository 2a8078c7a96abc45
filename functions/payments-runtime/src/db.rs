//! PostgreSQL (Aurora) over TLS, the server certificate verified against a CA bundle the operator
//! configures (`db/ca-bundle-path`; for Aurora, AWS's RDS bundle from
//! https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem — it is not in the public
//! root set, so the functions ship it). One connection per endpoint per container, opened on
//! first use and reopened when closed; every statement has a timeout.

use crate::config::{Params, SecretValue};
use crate::error::FnError;
use payments_core::migrations::{Migration, MIGRATIONS, MIGRATOR_ROLE};
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
        let settings =
            Settings { writer: endpoint("db/writer-endpoint")?, reader: endpoint("db/reader-endpoint")?, ca_bundle };
        Ok(settings.overridden_for_local_run(|name| std::env::var(name).ok()))
    }

    /// `tapctl local --database`: Parameter Store names the cluster's endpoints, which a machine
    /// outside the VPC (or the emulator's fake ones) cannot reach, so a local run points both
    /// endpoints at a reachable PostgreSQL through these variables. Lambda never sets them: on
    /// AWS the function's configuration is tapctl's, and it carries none of them.
    fn overridden_for_local_run(mut self, var: impl Fn(&str) -> Option<String>) -> Settings {
        let Some(host) = var(LOCAL_HOST_VARIABLE).filter(|h| !h.is_empty()) else {
            return self;
        };
        let port = var(LOCAL_PORT_VARIABLE).and_then(|p| p.parse().ok());
        for endpoint in [&mut self.writer, &mut self.reader] {
            endpoint.host = host.clone();
            if let Some(port) = port {
                endpoint.port = port;
            }
        }
        if let Some(ca) = var(LOCAL_CA_VARIABLE).filter(|c| !c.is_empty()) {
            self.ca_bundle = PathBuf::from(ca);
        }
        self
    }
}

/// The variables `tapctl local --database` sets; see [`Settings::overridden_for_local_run`].
pub const LOCAL_HOST_VARIABLE: &str = "PAYMENTS_LOCAL_DATABASE_HOST";
pub const LOCAL_PORT_VARIABLE: &str = "PAYMENTS_LOCAL_DATABASE_PORT";
pub const LOCAL_CA_VARIABLE: &str = "PAYMENTS_LOCAL_DATABASE_CA";

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

    /// The kept connection, if it is still open (no new credentials are needed then).
    pub async fn open(&self) -> Option<Arc<Client>> {
        self.slot.lock().await.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    /// Drop the connection (after an error that may have left it unusable).
    pub async fn reset(&self) {
        *self.slot.lock().await = None;
    }
}

/// Arbitrary but fixed: every migrator of this schema takes the same advisory lock.
const MIGRATION_LOCK: i64 = 0x7061_796d_656e_7473; // "payments"

/// Applies the migrations the database lacks, each in its own transaction, under a session
/// advisory lock so concurrent migrators do not race; refuses to go on when an applied
/// migration's checksum differs from the file's. Returns the versions it applied.
pub async fn migrate(client: &Client) -> Result<Vec<i32>, FnError> {
    apply(client, MIGRATIONS).await
}

/// [`migrate`] with a given list: the migrations of this code, or (tests) those an older
/// version of it embedded. A database ahead of the list is left as it is: migrations are
/// expand-only, so an older version's code works on a newer schema.
pub async fn apply(client: &Client, migrations: &[Migration]) -> Result<Vec<i32>, FnError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(|e| FnError::db("lock", &e))?;
    let result = migrate_locked(client, migrations).await;
    // Released by the session's end too; unlocking explicitly lets the connection be reused.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let applied = result?;
    unlocked.map_err(|e| FnError::db("unlock", &e))?;
    Ok(applied)
}

/// The newest migration the database holds (0: none, or no migrations table yet is an error).
pub async fn schema_version(client: &Client) -> Result<i32, tokio_postgres::Error> {
    client.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await.map(|r| r.get(0))
}

async fn migrate_locked(client: &Client, migrations: &[Migration]) -> Result<Vec<i32>, FnError> {
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
    for m in migrations {
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
        // Objects belong to the owner role, not to whoever signed in to migrate (the master), once
        // that role exists; only a migration that manages roles needs the master itself.
        let owner_exists = client
            .query_one("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", &[&MIGRATOR_ROLE])
            .await
            .map_err(|e| FnError::db("read roles", &e))?
            .get::<_, bool>(0);
        let role =
            if owner_exists && !m.manages_roles { format!("SET LOCAL ROLE {MIGRATOR_ROLE};\n") } else { String::new() };
        // One simple-query batch runs as one transaction: the migration and its record commit
        // together or not at all.
        let batch = format!(
            "BEGIN;\n{role}{}\n;INSERT INTO schema_migrations (version, name, checksum) VALUES ({}, '{}', '{}');\nCOMMIT;",
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

/// IAM database authentication: the password of a login that is a member of `rds_iam` is a
/// SigV4-presigned `connect` request for the endpoint and the login, valid 15 minutes for new
/// connections (an open connection outlives it). Signed locally with the function's own
/// credentials: no call to any AWS service, so a cold start pays nothing for it.
/// https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAMDBAuth.Connecting.html
#[cfg(feature = "iam-auth")]
pub mod iam {
    use crate::config::SecretValue;
    use crate::error::FnError;
    use aws_credential_types::provider::ProvideCredentials;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;
    use std::time::{Duration, SystemTime};

    /// AWS's maximum and the SDKs' default: a token signs in for 15 minutes.
    pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
    const SERVICE: &str = "rds-db";

    /// A token for `user` at `host:port`, signed with the SDK configuration's credentials and region.
    pub async fn token(sdk: &aws_config::SdkConfig, host: &str, port: u16, user: &str) -> Result<SecretValue, FnError> {
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| FnError::Config("no AWS credentials to sign the database token".into()))?;
        let credentials = provider.provide_credentials().await.map_err(|_| {
            FnError::Config("the AWS credentials could not be loaded to sign the database token".into())
        })?;
        let region = sdk.region().ok_or_else(|| FnError::Config("no AWS region to sign the database token".into()))?;
        presign(host, port, user, region.as_ref(), credentials, SystemTime::now()).map(SecretValue::new)
    }

    /// `host:port/?Action=connect&DBUser=<user>&X-Amz-…`: the presigned URL without its scheme,
    /// as AWS's SDKs make it (aws-sdk-rds `auth_token`).
    pub fn presign(
        host: &str,
        port: u16,
        user: &str,
        region: &str,
        credentials: Credentials,
        at: SystemTime,
    ) -> Result<String, FnError> {
        let identity: Identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.expires_in = Some(TOKEN_LIFETIME);
        settings.signature_location = SignatureLocation::QueryParams;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(SERVICE)
            .time(at)
            .settings(settings)
            .build()
            .map_err(|_| FnError::Config("the database token's signing parameters".into()))?;
        let url = format!("https://{host}:{port}/?Action=connect&DBUser={}", encode(user));
        let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
            .map_err(|_| FnError::Config("the database token's request".into()))?;
        let (instructions, _) = sign(request, &params.into())
            .map_err(|_| FnError::Config("signing the database token".into()))?
            .into_parts();
        let mut token = url.trim_start_matches("https://").to_string();
        for (name, value) in instructions.params() {
            token.push('&');
            token.push_str(&encode(name));
            token.push('=');
            token.push_str(&encode(value));
        }
        Ok(token)
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters (a session token
    /// holds `/`, `+` and `=`).
    fn encode(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_token_is_a_presigned_connect_for_the_login_valid_900_s_that_holds_no_secret() {
            let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
            let session = "FwoGZXIvYXdzEBYaD+session/token==";
            let credentials = Credentials::new("AKIDEXAMPLE", secret, Some(session.into()), None, "test");
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_547_200); // 2025-12-01T00:00:00Z
            let token = presign(
                "payments.cluster-x.us-east-1.rds.amazonaws.com",
                5432,
                "payments_process",
                "us-east-1",
                credentials.clone(),
                at,
            )
            .unwrap();
            assert!(token.starts_with("payments.cluster-x.us-east-1.rds.amazonaws.com:5432/?"), "{token}");
            let query: std::collections::BTreeMap<&str, &str> =
                token.split_once('?').unwrap().1.split('&').map(|kv| kv.split_once('=').unwrap()).collect();
            assert_eq!(query["Action"], "connect");
            assert_eq!(query["DBUser"], "payments_process");
            assert_eq!(query["X-Amz-Expires"], "900");
            assert_eq!(query["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
            assert_eq!(query["X-Amz-Credential"], "AKIDEXAMPLE%2F20251201%2Fus-east-1%2Frds-db%2Faws4_request");
            assert_eq!(query["X-Amz-Date"], "20251201T000000Z");
            assert_eq!(query["X-Amz-SignedHeaders"], "host");
            let signature = query["X-Amz-Signature"];
            assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()), "{signature}");
            // The session token travels (encoded), as AWS requires for temporary credentials;
            // the secret key never does, in any encoding.
            assert_eq!(query["X-Amz-Security-Token"], encode(session));
            assert!(!token.contains(secret) && !token.contains(&encode(secret)), "{token}");
            // Deterministic for one instant, different for another login.
            let again = presign(
                "payments.cluster-x.us-east-1.rds.amazonaws.com",
                5432,
                "payments_process",
                "us-east-1",
                credentials.clone(),
                at,
            )
            .unwrap();
            assert_eq!(token, again);
            let other = presign(
                "payments.cluster-x.us-east-1.rds.amazonaws.com",
                5432,
                "someone_else",
                "us-east-1",
                credentials,
                at,
            )
            .unwrap();
            assert_ne!(other.split("X-Amz-Signature=").nth(1), Some(signature));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aurora() -> Settings {
        let endpoint = |host: &str| Endpoint { host: host.into(), port: 5432, dbname: "payments".into() };
        Settings {
            writer: endpoint("payments.cluster-x.us-east-1.rds.amazonaws.com"),
            reader: endpoint("payments.cluster-ro-x.us-east-1.rds.amazonaws.com"),
            ca_bundle: PathBuf::from("/var/task/rds-global-bundle.pem"),
        }
    }

    #[test]
    fn a_local_run_points_both_endpoints_at_the_given_database_and_lambda_never_does() {
        let vars =
            [(LOCAL_HOST_VARIABLE, "127.0.0.1"), (LOCAL_PORT_VARIABLE, "6543"), (LOCAL_CA_VARIABLE, "/tmp/ca.pem")];
        let local =
            aurora().overridden_for_local_run(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()));
        for e in [&local.writer, &local.reader] {
            assert_eq!((e.host.as_str(), e.port, e.dbname.as_str()), ("127.0.0.1", 6543, "payments"));
        }
        assert_eq!(local.ca_bundle, PathBuf::from("/tmp/ca.pem"));
        // Without the variables (Lambda) the settings are Parameter Store's, untouched.
        let on_lambda = aurora().overridden_for_local_run(|_| None);
        assert_eq!(on_lambda.writer, aurora().writer);
        assert_eq!(on_lambda.reader, aurora().reader);
        assert_eq!(on_lambda.ca_bundle, aurora().ca_bundle);
    }
}
