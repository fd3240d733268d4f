//! The `api` binary: load config, init telemetry, run.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("api");
    let config = api::config::Config::from_env()?;
    api::startup::run(config, shared::http::shutdown_signal()).await
}
