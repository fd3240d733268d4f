//! The `ingest` binary: load config, init telemetry, run.

// Every batch allocates and frees dozens of small strings; mimalloc does that markedly faster
// than the system allocator (it was a quarter of ingest's CPU profile under load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("ingest");
    let config = ingest::config::Config::from_env()?;
    ingest::startup::run(config, shared::http::shutdown_signal()).await
}
