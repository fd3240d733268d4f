//! The `ingest` binary: load config, init telemetry, run.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("ingest");
    let config = ingest::config::Config::from_env()?;
    ingest::startup::run(config, shared::http::shutdown_signal()).await
}
