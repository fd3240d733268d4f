//! The `aggregator` binary: load config, init telemetry, run.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("aggregator");
    let config = aggregator::config::Config::from_env()?;
    aggregator::startup::run(config, shared::http::shutdown_signal()).await
}
