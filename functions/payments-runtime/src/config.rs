//! Configuration under `PAYMENTS_CONFIG_PREFIX`: every parameter below the prefix (one paginated
//! GetParametersByPath, decrypted) and the secrets they name, cached per container for a TTL so a
//! warm invocation makes no configuration calls, while a changed threshold or a rotated secret is
//! picked up within the TTL (or at once, through `invalidate_secret`, after a login failure).

use crate::error::FnError;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

pub const PREFIX_VARIABLE: &str = "PAYMENTS_CONFIG_PREFIX";
/// Optional override of the cache lifetime, in seconds (default 300).
pub const TTL_VARIABLE: &str = "PAYMENTS_CONFIG_TTL_SECONDS";

/// Parameters by name relative to the prefix (`fraud/review-amount-minor`).
#[derive(Clone, Default)]
pub struct Params(pub BTreeMap<String, String>);

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: some values (thresholds) are SecureStrings.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Params {
    pub fn get(&self, name: &str) -> Result<&str, FnError> {
        self.0.get(name).map(String::as_str).ok_or_else(|| FnError::Config(format!("parameter {name} is missing")))
    }

    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.0.get(name).map(String::as_str).unwrap_or(default)
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<T, FnError> {
        self.get(name)?.trim().parse().map_err(|_| FnError::Config(format!("parameter {name} must be a number")))
    }
}

/// A secret's value: never printed, never serialised.
#[derive(Clone)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> SecretValue {
        SecretValue(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

type Cached<T> = Option<(Instant, Arc<T>)>;

pub struct Config {
    pub prefix: String,
    ttl: Duration,
    ssm: aws_sdk_ssm::Client,
    secrets: aws_sdk_secretsmanager::Client,
    params: RwLock<Cached<Params>>,
    secret_values: RwLock<HashMap<String, (Instant, Arc<SecretValue>)>>,
}

static SHARED: tokio::sync::OnceCell<Config> = tokio::sync::OnceCell::const_new();

impl Config {
    /// The container's configuration, made from the environment on first use.
    pub async fn shared() -> Result<&'static Config, FnError> {
        SHARED
            .get_or_try_init(|| async {
                let c = crate::Clients::get().await;
                Config::from_env(c.ssm().clone(), c.secrets().clone())
            })
            .await
    }

    /// From the environment: `PAYMENTS_CONFIG_PREFIX` must be an absolute Parameter Store path.
    pub fn from_env(ssm: aws_sdk_ssm::Client, secrets: aws_sdk_secretsmanager::Client) -> Result<Config, FnError> {
        let prefix = std::env::var(PREFIX_VARIABLE)
            .map_err(|_| FnError::Config(format!("{PREFIX_VARIABLE} is not set")))?
            .trim_end_matches('/')
            .to_string();
        if !prefix.starts_with('/') || prefix.len() < 2 {
            return Err(FnError::Config(format!("{PREFIX_VARIABLE} must be a path such as /payments/qa")));
        }
        let ttl = std::env::var(TTL_VARIABLE).ok().and_then(|s| s.parse().ok()).unwrap_or(300);
        Ok(Config::new(prefix, Duration::from_secs(ttl), ssm, secrets))
    }

    pub fn new(
        prefix: String,
        ttl: Duration,
        ssm: aws_sdk_ssm::Client,
        secrets: aws_sdk_secretsmanager::Client,
    ) -> Config {
        Config { prefix, ttl, ssm, secrets, params: RwLock::new(None), secret_values: RwLock::new(HashMap::new()) }
    }

    pub async fn params(&self) -> Result<Arc<Params>, FnError> {
        if let Some((at, p)) = self.params.read().await.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(p.clone());
            }
        }
        let mut slot = self.params.write().await;
        // Another task may have loaded them while we waited for the lock.
        if let Some((at, p)) = slot.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(p.clone());
            }
        }
        let loaded = Arc::new(self.load_params().await?);
        *slot = Some((Instant::now(), loaded.clone()));
        Ok(loaded)
    }

    async fn load_params(&self) -> Result<Params, FnError> {
        let base = format!("{}/", self.prefix);
        let mut out = BTreeMap::new();
        let mut pages =
            self.ssm.get_parameters_by_path().path(&base).recursive(true).with_decryption(true).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| FnError::aws("ssm:GetParametersByPath", e))?;
            for p in page.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    if let Some(relative) = name.strip_prefix(&base) {
                        out.insert(relative.to_string(), value.to_string());
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(FnError::Config(format!("no parameters under {}", self.prefix)));
        }
        Ok(Params(out))
    }

    /// The AWSCURRENT value of the secret whose ARN is the parameter `arn_parameter`.
    pub async fn secret(&self, arn_parameter: &str) -> Result<Arc<SecretValue>, FnError> {
        let arn = self.params().await?.get(arn_parameter)?.to_string();
        if let Some((at, v)) = self.secret_values.read().await.get(&arn) {
            if at.elapsed() < self.ttl {
                return Ok(v.clone());
            }
        }
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .map_err(|e| FnError::aws("secretsmanager:GetSecretValue", e))?;
        let value = Arc::new(SecretValue(
            out.secret_string().ok_or_else(|| FnError::Config(format!("secret {arn_parameter} has no string")))?.into(),
        ));
        self.secret_values.write().await.insert(arn, (Instant::now(), value.clone()));
        Ok(value)
    }

    /// Forget a cached secret (after the database refused it: it may have been rotated).
    pub async fn invalidate_secret(&self, arn_parameter: &str) {
        if let Ok(p) = self.params().await {
            if let Ok(arn) = p.get(arn_parameter) {
                self.secret_values.write().await.remove(arn);
            }
        }
    }
}
