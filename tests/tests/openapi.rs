//! docs/openapi.yaml is part of the contract: schemathesis, with every check on, finds no
//! difference between it and the running api and ingest.
//!
//! Schemathesis comes from PyPI into `.venv-schemathesis/` (deploy/local/deps.sh, which
//! `make test` runs), or from `CP_SCHEMATHESIS`. Its settings are in the repository's
//! `schemathesis.toml`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use cp_tests::{
    batch::id,
    client::Api,
    stack::{Proc, Stack},
};

/// Generated cases per operation and phase: enough to cover every field's bounds, small enough
/// that both runs take well under a minute on two cores.
const MAX_EXAMPLES: &str = "60";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("CP_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-schemathesis/bin/schemathesis"));
    assert!(path.exists(), "{} is missing: run `deploy/local/deps.sh --test` (make test does)", path.display());
    path
}

/// Runs schemathesis on the document against `url`; panics with its report on any failure.
fn run(stack: &Stack, what: &str, url: &str, extra: &[&str]) {
    let root = workspace_root();
    let out = Command::new(schemathesis())
        .arg("--config-file")
        .arg(root.join("schemathesis.toml"))
        .arg("run")
        .arg(root.join("docs/openapi.yaml"))
        .args(["--url", url, "--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", "1"])
        .args(["--request-timeout", "15", "--no-color", "--generation-database", "none"])
        .args(extra)
        // Its caches and reports land in the stack's directory, removed with the stack.
        .current_dir(&stack.dir)
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found differences on {what}:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary =
        report.lines().filter(|l| l.contains("generated") || l.contains("No issues found")).collect::<Vec<_>>().join("\n");
    eprintln!("{what}: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_running_api_and_ingest_under_every_schemathesis_check() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let token = api.register(&format!("{}@example.com", id("openapi"))).await;
    // A site of the caller's own, so that the stateful phase reaches real sites through links.
    api.create_site(&token, "example.com", "UTC").await;
    let auth = format!("Authorization: Bearer {token}");

    // Logging out ends the token every other operation runs with: it goes last, alone.
    run(
        &stack,
        "the api",
        &stack.url(Proc::Api),
        &[
            "--exclude-path",
            "/api/events/batch",
            "--exclude-path",
            "/api/event",
            "--exclude-path",
            "/api/auth/logout",
            "--header",
            &auth,
        ],
    );
    run(
        &stack,
        "the api's logout",
        &stack.url(Proc::Api),
        &["--include-path", "/api/auth/logout", "--header", &auth, "--phases", "examples,coverage,fuzzing"],
    );
    // Ingest's operations are not linked to each other: no stateful phase. The generated keys
    // are unknown, and ingest validates the whole batch before it looks the key up, so a
    // schema-valid batch is answered 401 and any 400 to one is a difference.
    run(
        &stack,
        "ingest",
        &stack.url(Proc::Ingest),
        &[
            "--include-path",
            "/api/events/batch",
            "--include-path",
            "/api/event",
            "--include-path",
            "/healthz",
            "--include-path",
            "/readyz",
            "--phases",
            "examples,coverage,fuzzing",
        ],
    );
}
