//! The baseline for ingest benchmarks: a bare axum handler on the batch route that reads the
//! body and answers 202, nothing else. Same allocator, runtime and server as `ingest`, so the
//! ratio of the two in one run is what ingest's own work costs.
//!
//! `ingest-baseline [ADDR]` (default `127.0.0.1:18090`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::{body::Bytes, http::StatusCode, routing::post};

async fn accept(body: Bytes) -> (StatusCode, &'static str) {
    // Touch the body so it is really read, as ingest must.
    std::hint::black_box(body.len());
    (StatusCode::ACCEPTED, "{\"accepted\":5}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".to_string());
    let app = axum::Router::new().route("/api/events/batch", post(accept));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("ingest-baseline listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
