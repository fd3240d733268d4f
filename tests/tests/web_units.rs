//! Unit tests of the dashboard's pure modules (number, duration, rate and change formatting,
//! country names, date ranges, the view in the URL), run in node by `tests/browser/units.mjs`.

use serde_json::Value;

#[test]
fn dashboard_formatting_ranges_and_view_queries_follow_their_rules() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser").join("units.mjs");
    // web/assets are ES modules without a package.json of their own.
    let out = std::process::Command::new("node")
        .args(["--experimental-detect-module", "--no-warnings"])
        .arg(&script)
        .output()
        .expect("node is installed (make test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("a JSON report: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(report["cases"].as_u64().is_some_and(|n| n >= 80), "{report}");
    assert_eq!(report["failures"], serde_json::json!([]), "failed cases");
}
