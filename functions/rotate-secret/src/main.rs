//! Secrets Manager rotation of the Aurora PostgreSQL credentials: the four steps Secrets Manager
//! invokes with `{SecretId, ClientRequestToken, Step}`.
//!
//! Strategy: **single user**. The secret holds the cluster's master user; the alternating-users
//! strategy needs a second, more privileged secret to create and alter the clone user, and the
//! master user is already the most privileged one — adding a superuser secret to rotate it would
//! widen, not narrow, what a leak exposes. The cost of single-user is a short window between
//! setSecret and finishSecret in which the database already wants the new password while
//! AWSCURRENT still holds the old one: the functions close it by re-reading the secret and
//! reconnecting once when a login is refused (process's `State::db`).
//!
//! The new password is sent as a SCRAM-SHA-256 verifier, never in clear: `ALTER ROLE` statements
//! can be logged by the server (`log_statement`), and the verifier is all the server keeps anyway.
//!
//! Every step is idempotent (Secrets Manager retries them): createSecret keeps an existing
//! AWSPENDING value; setSecret does nothing when the pending password already works; finishSecret
//! does nothing when the version is already AWSCURRENT. A failure before finishSecret leaves
//! AWSCURRENT as it was and working.
//!
//! It is also **the migrator**: the only function that reads the master credential, so the only
//! one that can change the schema. `{"action":"migrate"}` (invoked by process, synchronously,
//! through the alias of process's own colour) signs in to the writer as the master user and
//! applies the migrations this build embeds; later migrations' objects are created under
//! `SET ROLE payments_migrator`, their owner. Answer: `{"schema_version": N, "applied": [..]}`.

use aws_sdk_secretsmanager::Client as Secrets;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use payments_runtime::db::{self, Credentials, Settings};
use payments_runtime::{Clients, Config, FnError, SecretValue};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;

/// The master secret's ARN (the migrator signs in with its AWSCURRENT value).
const MASTER_SECRET: &str = "resources/db-secret-arn";

/// What the function is invoked with: a Secrets Manager rotation step, or an action.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Event {
    Rotation(RotationEvent),
    Action { action: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RotationEvent {
    secret_id: String,
    client_request_token: String,
    step: String,
}

const CURRENT: &str = "AWSCURRENT";
const PENDING: &str = "AWSPENDING";
const PREVIOUS: &str = "AWSPREVIOUS";

async fn value(secrets: &Secrets, id: &str, stage: &str, version: Option<&str>) -> Result<SecretValue, FnError> {
    let out = secrets
        .get_secret_value()
        .secret_id(id)
        .version_stage(stage)
        .set_version_id(version.map(String::from))
        .send()
        .await
        .map_err(|e| FnError::aws("secretsmanager:GetSecretValue", e))?;
    out.secret_string()
        .map(|s| SecretValue::new(s.to_string()))
        .ok_or_else(|| FnError::Config(format!("the {stage} version has no string value")))
}

/// The version holding `stage`, from the secret's metadata.
async fn version_with(secrets: &Secrets, id: &str, stage: &str) -> Result<Option<String>, FnError> {
    let d = secrets
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| FnError::aws("secretsmanager:DescribeSecret", e))?;
    Ok(d.version_ids_to_stages()
        .into_iter()
        .flatten()
        .find(|(_, stages)| stages.iter().any(|s| s == stage))
        .map(|(v, _)| v.clone()))
}

async fn create_secret(secrets: &Secrets, e: &RotationEvent) -> Result<(), FnError> {
    let current = value(secrets, &e.secret_id, CURRENT, None).await?;
    if value(secrets, &e.secret_id, PENDING, Some(&e.client_request_token)).await.is_ok() {
        tracing::info!("createSecret: the pending version exists already");
        return Ok(());
    }
    let mut doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(current.expose())
        .map_err(|_| FnError::Config("the current secret is not a JSON object".into()))?;
    // The same alphabet as the first password (tapctl's secrets.db-master): RDS refuses / @ " and space.
    let random = secrets
        .get_random_password()
        .password_length(32)
        .exclude_characters("/@\"' \\`")
        .require_each_included_type(true)
        .send()
        .await
        .map_err(|e| FnError::aws("secretsmanager:GetRandomPassword", e))?;
    let password = random.random_password().ok_or_else(|| FnError::Config("no random password".into()))?;
    doc.insert("password".into(), password.into());
    secrets
        .put_secret_value()
        .secret_id(&e.secret_id)
        .client_request_token(&e.client_request_token)
        .secret_string(serde_json::Value::Object(doc).to_string())
        .version_stages(PENDING)
        .send()
        .await
        .map_err(|e| FnError::aws("secretsmanager:PutSecretValue", e))?;
    tracing::info!("createSecret: new pending version stored");
    Ok(())
}

async fn set_secret(secrets: &Secrets, config: &Config, e: &RotationEvent) -> Result<(), FnError> {
    let settings = Settings::from_params(&*config.params().await?)?;
    let tls = db::tls(&settings.ca_bundle)?;
    let pending =
        Credentials::from_secret(&value(secrets, &e.secret_id, PENDING, Some(&e.client_request_token)).await?)?;
    if db::connect(&settings.writer, &pending, &tls).await.is_ok() {
        tracing::info!("setSecret: the pending password works already");
        return Ok(());
    }
    let current = Credentials::from_secret(&value(secrets, &e.secret_id, CURRENT, None).await?)?;
    if current.username != pending.username {
        return Err(FnError::Config("the pending secret names another user than the current one".into()));
    }
    // After an interrupted earlier rotation the database may still know only the previous password.
    let client = match db::connect(&settings.writer, &current, &tls).await {
        Ok(c) => c,
        Err(first) => {
            match value(secrets, &e.secret_id, PREVIOUS, None).await.and_then(|p| Credentials::from_secret(&p)) {
                Ok(previous) => db::connect(&settings.writer, &previous, &tls).await.map_err(|_| first)?,
                Err(_) => return Err(first),
            }
        }
    };
    let verifier = postgres_protocol::password::scram_sha_256(pending.password.as_bytes());
    let role = pending.username.replace('"', "\"\"");
    client
        .batch_execute(&format!("ALTER ROLE \"{role}\" WITH PASSWORD '{verifier}'"))
        .await
        .map_err(|err| FnError::db("alter role", &err))?;
    tracing::info!("setSecret: the database has the pending password");
    Ok(())
}

async fn test_secret(secrets: &Secrets, config: &Config, e: &RotationEvent) -> Result<(), FnError> {
    let settings = Settings::from_params(&*config.params().await?)?;
    let tls = db::tls(&settings.ca_bundle)?;
    let pending =
        Credentials::from_secret(&value(secrets, &e.secret_id, PENDING, Some(&e.client_request_token)).await?)?;
    let client = db::connect(&settings.writer, &pending, &tls).await?;
    client.query_one("SELECT 1", &[]).await.map_err(|err| FnError::db("test query", &err))?;
    tracing::info!("testSecret: the pending credentials log in");
    Ok(())
}

async fn finish_secret(secrets: &Secrets, e: &RotationEvent) -> Result<(), FnError> {
    let current = version_with(secrets, &e.secret_id, CURRENT).await?;
    if current.as_deref() == Some(e.client_request_token.as_str()) {
        tracing::info!("finishSecret: the version is current already");
        return Ok(());
    }
    secrets
        .update_secret_version_stage()
        .secret_id(&e.secret_id)
        .version_stage(CURRENT)
        .move_to_version_id(&e.client_request_token)
        .set_remove_from_version_id(current)
        .send()
        .await
        .map_err(|e| FnError::aws("secretsmanager:UpdateSecretVersionStage", e))?;
    tracing::info!("finishSecret: the new version is AWSCURRENT");
    Ok(())
}

/// Brings the schema up to the migrations of this build, as the master user.
async fn migrate(secrets: &Secrets, config: &Config) -> Result<Value, FnError> {
    let params = config.params().await?;
    let settings = Settings::from_params(&params)?;
    let tls = db::tls(&settings.ca_bundle)?;
    let arn = params.get(MASTER_SECRET)?;
    let current = Credentials::from_secret(&value(secrets, arn, CURRENT, None).await?)?;
    let client = match db::connect(&settings.writer, &current, &tls).await {
        Ok(c) => c,
        // Between a rotation's setSecret and finishSecret the database knows only the pending password.
        Err(refused) if db::is_auth_failure(&refused) => {
            let pending = value(secrets, arn, PENDING, None)
                .await
                .and_then(|p| Credentials::from_secret(&p))
                .map_err(|_| refused)?;
            db::connect(&settings.writer, &pending, &tls).await?
        }
        Err(e) => return Err(e),
    };
    let applied = db::migrate(&client).await?;
    let version = db::schema_version(&client).await.map_err(|e| FnError::db("schema version", &e))?;
    tracing::info!(schema_version = version, applied = ?applied, "migrate: the schema is up to date");
    Ok(json!({ "schema_version": version, "applied": applied }))
}

async fn handle(event: LambdaEvent<Event>) -> Result<Value, Error> {
    let clients = Clients::get().await;
    let config = Config::shared().await?;
    let e = match event.payload {
        Event::Rotation(e) => e,
        Event::Action { action } if action == "migrate" => {
            return migrate(clients.secrets(), config).await.map_err(|err| {
                tracing::error!(error = %err, "migrate failed");
                Error::from(err.to_string())
            });
        }
        Event::Action { action } => return Err(Error::from(format!("unknown action {action:?}"))),
    };
    let span = tracing::info_span!("rotation", step = %e.step, token = %e.client_request_token);
    let result = async {
        match e.step.as_str() {
            "createSecret" => create_secret(clients.secrets(), &e).await,
            "setSecret" => set_secret(clients.secrets(), config, &e).await,
            "testSecret" => test_secret(clients.secrets(), config, &e).await,
            "finishSecret" => finish_secret(clients.secrets(), &e).await,
            other => Err(FnError::Config(format!("unknown rotation step {other:?}"))),
        }
    }
    .instrument(span)
    .await;
    result.map(|()| Value::Null).map_err(|err| {
        tracing::error!(error = %err, "rotation step failed");
        Error::from(err.to_string())
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    payments_runtime::init_logging();
    run(service_fn(handle)).await
}
