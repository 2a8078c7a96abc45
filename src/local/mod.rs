//! `tapctl local` (design.md §9): the stack's REST API served on loopback as API Gateway serves
//! it, running the functions' real bootstraps here. `server` follows a request through API
//! Gateway's steps; `api` reads the API and its stage from the account; `auth` checks SigV4 as
//! API Gateway's IAM authorization does; `runtime` is the Lambda Runtime API the bootstraps poll;
//! `packages` finds a version's code by its CodeSha256.

pub mod api;
pub mod auth;
pub mod packages;
pub mod runtime;
pub mod server;

use crate::aws::Clients;
use crate::cli::LocalArgs;
use crate::config::{self, Selection};
use crate::error::Error;
use crate::names::Names;

/// The variables of tapctl's own environment the functions get to reach AWS as the operator:
/// credentials, and the endpoint (the emulator's, in tests and the demo).
const PASSED_THROUGH: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_CA_BUNDLE",
    // The same profile and files as tapctl's, so the functions sign with the keys tapctl local
    // checks (and reach the same account).
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "PATH",
    "HOME",
];

pub async fn run(args: &LocalArgs) -> Result<u8, Error> {
    let selection = Selection::from_args(&args.target, config::region_from_env())?;
    let sdk = crate::aws::sdk_config(&selection.region, selection.endpoint_url.as_deref()).await;
    let clients = Clients::new(&sdk, selection.endpoint_url.is_some());
    let account = clients.account_id().await?;
    let suffix = crate::commands::stacks::resolve_suffix(&selection, &clients.s3).await?;
    let names = Names::new(&suffix, &selection.region, Some(&account));
    let Some(api_id) = crate::resources::api::stage::find_api(&clients.apigateway, &names.api()).await? else {
        return Err(Error::invalid(
            "--suffix",
            format!(
                "the stack {suffix} has no REST API {} in {}: run `tapctl up` first",
                names.api(),
                selection.region
            ),
        ));
    };
    let Some(credentials) = sdk.credentials_provider() else {
        return Err(Error::invalid(
            "credentials",
            "tapctl local checks signatures with tapctl's own AWS credentials, and none were found",
        ));
    };
    // Bound first: the functions are told this address as their Lambda endpoint.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| Error::invalid("--port", format!("cannot listen on 127.0.0.1:{}: {e}", args.port)))?;
    let address = listener.local_addr().map_err(|e| Error::invalid("--port", e.to_string()))?;
    let options = server::Options {
        region: selection.region.clone(),
        account,
        api_id: api_id.clone(),
        stage: crate::traffic::STAGE.to_string(),
        packages: args.packages.clone(),
        database: args.database.clone(),
        credentials,
        aws_env: PASSED_THROUGH.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect(),
        address: address.to_string(),
    };
    let local = server::Local::new(clients.apigateway.clone(), clients.lambda.clone(), options)
        .await
        .map_err(|e| Error::invalid("--suffix", e))?;
    local.keep_fresh();
    crate::outln!(
        "serving the REST API {api_id} of stack {suffix} at http://{address}/{} (Ctrl-C stops)",
        crate::traffic::STAGE
    );
    tokio::select! {
        _ = local.serve(listener) => Ok(0),
        _ = crate::interrupt::interrupted() => Ok(0),
    }
}
