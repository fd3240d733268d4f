//! The `ingest` binary: load config, init telemetry, run.

// Every batch allocates and frees dozens of small strings; mimalloc does that markedly faster
// than the system allocator (it was a quarter of ingest's CPU profile under load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    shared::telemetry::init("ingest");
    let config = ingest::config::Config::from_env()?;
    tracing::info!(worker_threads = config.worker_threads, "runtime");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()?
        .block_on(ingest::startup::run(config, shared::http::shutdown_signal()))
}
