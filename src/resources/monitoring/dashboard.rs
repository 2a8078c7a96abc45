//! `monitoring.dashboard`: one dashboard, `payments-<suffix>`, of the payment path top to
//! bottom: the API (p50/p99 latency, 4XX/5XX), each function (duration, errors, throttles), the
//! transactions table (latency, throttles) and Aurora (CPU, connections, read/write latency,
//! capacity).

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::names::{Names, FUNCTIONS};
use crate::resources::Outputs;
use crate::resources::{Change, Ctx, Drift, Resource, Result};
use crate::traffic::STAGE;
use async_trait::async_trait;
use serde_json::{json, Value};

pub struct Dashboard;

pub const ID: &str = "monitoring.dashboard";

fn widget(title: &str, region: &str, metrics: Vec<Value>, x: i32, y: i32) -> Value {
    json!({
        "type": "metric", "x": x, "y": y, "width": 12, "height": 6,
        "properties": { "title": title, "region": region, "view": "timeSeries", "stacked": false,
                        "period": 60, "metrics": metrics }
    })
}

/// The dashboard's body (CloudWatch's dashboard JSON).
pub fn body(n: &Names) -> Value {
    let (api, region) = (n.api(), n.region.as_str());
    let api_metric =
        |m: &str, stat: &str| json!(["AWS/ApiGateway", m, "ApiName", api, "Stage", STAGE, { "stat": stat }]);
    let per_function = |m: &str, stat: &str| -> Vec<Value> {
        FUNCTIONS.iter().map(|f| json!(["AWS/Lambda", m, "FunctionName", n.function(f), { "stat": stat }])).collect()
    };
    let table = n.table();
    let cluster = n.db_cluster();
    let db = |m: &str, stat: &str| json!(["AWS/RDS", m, "DBClusterIdentifier", cluster, { "stat": stat }]);
    let widgets = vec![
        widget(
            "API latency p50 / p99 (ms)",
            region,
            vec![api_metric("Latency", "p50"), api_metric("Latency", "p99")],
            0,
            0,
        ),
        widget("API 4XX / 5XX", region, vec![api_metric("4XXError", "Sum"), api_metric("5XXError", "Sum")], 12, 0),
        widget("Lambda duration p99 (ms)", region, per_function("Duration", "p99"), 0, 6),
        widget("Lambda errors", region, per_function("Errors", "Sum"), 12, 6),
        widget("Lambda throttles", region, per_function("Throttles", "Sum"), 0, 12),
        widget(
            "DynamoDB latency (ms) and throttles",
            region,
            vec![
                json!(["AWS/DynamoDB", "SuccessfulRequestLatency", "TableName", table, "Operation", "PutItem", { "stat": "Average" }]),
                json!(["AWS/DynamoDB", "SuccessfulRequestLatency", "TableName", table, "Operation", "Query", { "stat": "Average" }]),
                json!(["AWS/DynamoDB", "ThrottledRequests", "TableName", table, { "stat": "Sum" }]),
            ],
            12,
            12,
        ),
        widget("Aurora CPU (%)", region, vec![db("CPUUtilization", "Average")], 0, 18),
        widget("Aurora connections", region, vec![db("DatabaseConnections", "Sum")], 12, 18),
        widget(
            "Aurora read / write latency (s)",
            region,
            vec![db("ReadLatency", "Average"), db("WriteLatency", "Average")],
            0,
            24,
        ),
        widget(
            "Aurora capacity (ACU)",
            region,
            vec![db("ServerlessDatabaseCapacity", "Average"), db("ACUUtilization", "Average")],
            12,
            24,
        ),
    ];
    json!({ "widgets": widgets })
}

pub struct Observed {
    pub body: Value,
}

#[async_trait]
impl Resource for Dashboard {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let got = ctx
            .clients
            .cloudwatch
            .get_dashboard()
            .dashboard_name(ctx.names.dashboard())
            .send()
            .await
            .aws("cloudwatch:GetDashboard")
            .ok_if_not_found()?;
        Ok(got.map(|d| Observed {
            body: d.dashboard_body().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null),
        }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let want = body(&ctx.names);
        if o.body == want {
            return Ok(Change::NoOp);
        }
        let widgets = want["widgets"].as_array().map_or(0, Vec::len);
        Ok(Change::from_drifts(vec![Drift::new("body", "differs", format!("the stack's {widgets} widgets"))]))
    }

    fn outputs(&self, ctx: &Ctx, _o: &Observed) -> Outputs {
        Outputs::from([("dashboard_name".into(), json!(ctx.names.dashboard()))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let doing = if observed.is_some() { "restoring" } else { "creating" };
        ctx.progress.step(&format!("{doing} dashboard {}", ctx.names.dashboard()));
        ctx.clients
            .cloudwatch
            .put_dashboard()
            .dashboard_name(ctx.names.dashboard())
            .dashboard_body(body(&ctx.names).to_string())
            .send()
            .await
            .aws("cloudwatch:PutDashboard")?;
        Ok(Outputs::from([("dashboard_name".into(), json!(ctx.names.dashboard()))]))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        ctx.clients
            .cloudwatch
            .delete_dashboards()
            .dashboard_names(ctx.names.dashboard())
            .send()
            .await
            .aws("cloudwatch:DeleteDashboards")
            .ok_if_not_found()?;
        Ok(())
    }
}
