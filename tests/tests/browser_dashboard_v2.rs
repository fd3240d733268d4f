//! The v2 dashboard and the shared page in headless Chromium against the fake api
//! (`tests/browser/fake-api.mjs`), which answers every call with contract-shaped figures,
//! `(other)` rows and hostile strings in every tracked field. Each test runs one scenario of
//! `tests/browser/dashboard_v2.mjs` with a fake api of its own and asserts on its report:
//! figures exactly as formatted, changes against the previous period, inert payloads, goals,
//! the page filter and history, the date range, CSV export, sharing, the live counter, loading
//! and error states, and screenshots at 1280 and 375 px in `target/cp-artifacts/screenshots/`;
//! issue 21's funnels (chart and editor), segment picker and editor, and one-click filters;
//! issue 24's members, weekly report and alerts, and what each role is shown.

use cp_tests::browser::{Driver, FakeApi};
use serde_json::{Value, json};

const IMG: &str = "<img src=x onerror=\"window.__xss=1;alert(1)\">";
const SCRIPT: &str = "<script>window.__xss=2;alert(2)</script>";

/// The confirmations the app itself asks for; any other dialog is a payload that ran.
const APP_DIALOGS: [&str; 8] = [
    "Delete the goal ",
    "Delete the funnel ",
    "Delete the segment ",
    "Replace the public link?",
    "Revoke the public link?",
    "Delete the key ",
    "Remove ",
    "Delete the alert ",
];

fn shots() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cp-artifacts/screenshots").to_string_lossy().to_string()
}

/// Runs `scenario` against a fresh fake api; checks what every scenario must hold.
async fn run(scenario: &str) -> Value {
    let fake = FakeApi::start().await;
    let r = Driver::start("dashboard_v2.mjs", &[scenario, &fake.url, &shots()]).finish().await;
    assert_eq!(r["payloads"], json!({"IMG": IMG, "SCRIPT": SCRIPT}), "the fake api's payloads are the ones asserted here");
    assert_eq!(r["pageErrors"], json!([]), "{scenario}: page errors");
    assert_eq!(r["consoleErrors"], json!([]), "{scenario}: console errors (CSP refusals included)");
    for d in r["dialogs"].as_array().expect("dialogs") {
        let d = d.as_str().expect("dialog text");
        assert!(APP_DIALOGS.iter().any(|own| d.starts_with(own)), "{scenario}: a dialog the app did not open: {d}");
    }
    let pages = r["xssAtEnd"].as_array().expect("pages");
    assert!(!pages.is_empty() && pages.iter().all(Value::is_null), "{scenario}: a payload ran: {}", r["xssAtEnd"]);
    r
}

/// A view read by the driver shows no trace of a payload running.
fn assert_inert(view: &Value, what: &str) {
    assert!(view["xss"].is_null(), "{what}: a payload ran");
    assert_eq!(view["injected"], 0, "{what}: payload markup became elements");
    assert_eq!(view["handlers"], 0, "{what}: an element has an on* attribute");
    assert!(
        view["links"].as_array().expect("links").iter().all(|h| h.as_str().is_some_and(|h| h.starts_with("https://"))),
        "{what}: only http(s) links: {}",
        view["links"]
    );
}

fn rows(rows: &[&[&str]]) -> Value {
    json!(rows)
}

fn card(view: &Value, id: &str) -> (String, String) {
    let c = &view["cards"][id];
    (c["value"].as_str().unwrap_or_default().to_string(), c["delta"].as_str().unwrap_or_default().to_string())
}

fn img_path() -> String {
    format!("/{IMG}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_tables_and_charts_show_the_figures_formatted_and_compared_with_the_previous_period() {
    let r = run("figures").await;
    let v = &r["v2"];
    assert_inert(v, "v2 dashboard");

    // Cards: humane numbers, and the change against `previous` (percentage points for rates;
    // "—" without an arrow when the previous value is 0).
    let expected = [
        ("pageviews", "12.3k", "↑ 23%", "up good"),
        ("visitors", "3.5k", "↓ 14%", "down bad"),
        ("sessions", "4.2k", "0%", "flat"),
        ("bounce-rate", "41.2%", "↓ 4.0 pp", "down good"),
        ("time", "3 m 4 s", "↓ 7.9%", "down bad"),
        ("scroll", "55%", "↑ 5.0%", "up good"),
        ("clicks", "987", "—", "none"),
        ("conversions", "321", "↑ 7.0%", "up good"),
        ("conversion-rate", "7.6%", "↑ 0.5 pp", "up good"),
    ];
    for (id, value, delta, cls) in expected {
        assert_eq!(card(v, id), (value.to_string(), delta.to_string()), "card {id}");
        assert_eq!(v["cards"][id]["cls"], format!("delta {cls}"), "card {id} direction");
        assert_eq!(v["cards"][id]["shown"], true, "card {id}");
    }

    // Tables, exactly as formatted; payloads as text; (other) rows kept.
    let t = &v["tables"];
    let img = img_path();
    assert_eq!(
        t["pages"],
        rows(&[&["/", "5.1k"], &["/pricing", "2.3k"], &[&img, "1.2k"], &["/blog/launch", "980"], &["(other)", "2.7k"]])
    );
    assert_eq!(v["headers"]["referrers"], json!(["Source", "Visits", "Conv.", "CR"]));
    assert_eq!(
        t["referrers"],
        rows(&[
            &["google.com", "1.5k", "120", "8.0%"],
            &["(direct)", "1.2k", "90", "7.5%"],
            &[IMG, "300", "10", "3.3%"],
            &["javascript:alert(4)", "20", "0", "0.0%"],
            &["(other)", "410", "11", "2.7%"]
        ])
    );
    assert_eq!(t["goals"], rows(&[&[&format!("Signup {IMG}"), "200", "4.8%"], &["Thank-you page", "150", "3.6%"]]));
    assert_eq!(
        t["campaigns"],
        rows(&[
            &["spring_sale", "900", "81", "9.0%"],
            &["launch_week", "420", "12", "2.9%"],
            &[IMG, "50", "2", "4.0%"],
            &["(other)", "30", "1", "3.3%"]
        ])
    );
    assert_eq!(
        t["mediums"],
        rows(&[&["email", "700", "70", "10.0%"], &["cpc", "650", "30", "4.6%"], &[SCRIPT, "5", "0", "0.0%"]])
    );
    assert_eq!(v["headers"]["variants"], json!(["Variant", "Visits", "Conv.", "Rate"]));
    assert_eq!(
        t["variants"],
        rows(&[&["B", "2.1k", "171", "8.3%"], &["A", "2.1k", "150", "7.1%"], &[IMG, "10", "0", "0.0%"]])
    );
    assert_eq!(t["events"], rows(&[&["Signup", "321"], &["form_submit", "280"], &["outbound", "95"], &[IMG, "3"]]));
    assert_eq!(
        t["clicks"],
        rows(&[
            &["button#cta", "Start free trial", "500"],
            &["a.pricing-link", "See pricing", "320"],
            &[IMG, SCRIPT, "40"],
            &["(other)", "", "12"]
        ])
    );
    assert_eq!(t["devices"], rows(&[&["Desktop", "2.5k"], &["Mobile", "1.5k"], &["Tablet", "210"]]));
    assert_eq!(
        t["browsers"],
        rows(&[
            &["Chrome", "2.3k"],
            &["Safari", "1.1k"],
            &["Firefox", "500"],
            &["Edge", "200"],
            &[IMG, "60"],
            &["Other", "50"]
        ])
    );
    assert_eq!(
        t["os"],
        rows(&[
            &["Windows", "1.4k"],
            &["macOS", "1k"],
            &["iOS", "900"],
            &["Android", "600"],
            &["Linux", "300"],
            &[SCRIPT, "10"]
        ])
    );
    assert_eq!(
        t["countries"],
        rows(&[
            &["Germany", "1.8k"],
            &["United States", "1.2k"],
            &["United Kingdom", "600"],
            &["(unknown)", "300"],
            &["(other)", "300"],
            &[IMG, "10"]
        ])
    );

    // The traffic chart: this period, and the previous one as a fourth, dashed line.
    let series = &v["charts"]["series"];
    assert_eq!(series["data"][0], r["expectedSeries"], "pageviews of the period");
    assert_eq!(series["data"][3], r["previousSeries"], "pageviews of {} (the previous period)", r["previousRange"]);
    assert_eq!(series["dashed"], json!([false, false, false, true]));
    assert!(
        v["charts"]["clicks"]["labels"].as_array().expect("labels").contains(&json!(SCRIPT)),
        "payloads are chart labels as plain strings"
    );

    // The live view, and the URL of the view.
    assert_eq!(v["live"]["shown"], true);
    assert_eq!(v["live"]["visitors"], "7");
    assert_eq!(v["live"]["pages"], rows(&[&["/pricing", "4"], &[&img, "2"], &["/", "1"]]));
    assert_eq!(v["charts"]["live"]["data"][0].as_array().map(Vec::len), Some(30), "30 minutes");
    assert_eq!(v["url"], "/dashboard?site=site-v2&timeframe=7d");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_v2_fields_gets_the_v1_dashboard_without_empty_cards_or_tables() {
    let r = run("figures").await;
    let v = &r["v1"];
    assert_inert(v, "v1 dashboard");
    for id in ["conversions", "conversion-rate", "bounce-rate"] {
        assert_eq!(v["cards"][id]["shown"], false, "card {id} is hidden when the summary lacks it");
    }
    for id in ["pageviews", "visitors", "sessions", "clicks", "scroll", "time"] {
        assert_eq!(v["cards"][id]["shown"], true, "card {id}");
        assert_eq!(v["cards"][id]["delta"], "", "no change shown without `previous`: {id}");
    }
    assert_eq!(card(v, "pageviews").0, "12.3k");
    for id in ["goals", "campaigns", "mediums", "variants", "events", "devices", "browsers", "os", "countries"] {
        assert_eq!(v["panels"][id], false, "table {id} is hidden when the field is absent");
    }
    for id in ["pages", "referrers", "clicks"] {
        assert_eq!(v["panels"][id], true, "table {id}");
    }
    assert_eq!(v["headers"]["referrers"], json!(["Source", "Visits"]), "no conversion columns without conversions");
    assert_eq!(v["live"]["shown"], false, "no realtime route: no live panel");
    assert_eq!(v["goalsManager"], false, "no goals routes: no goals panel");
    assert_eq!(
        v["charts"]["series"]["data"].as_array().map(Vec::len),
        Some(4),
        "the previous line comes from a from/to call"
    );
    assert_eq!(v["url"], "/dashboard?site=site-v1&timeframe=7d");
    // Back returns to the other site and its view.
    assert_eq!(r["afterBack"]["url"], "/dashboard?site=site-v2&timeframe=7d");
    assert_eq!(card(&r["afterBack"], "conversions").0, "321");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_are_created_from_picked_or_typed_matches_deleted_and_refused_next_to_the_field() {
    let r = run("goals").await;
    assert_eq!(
        r["initial"],
        rows(&[&[&format!("Signup {IMG}"), "Custom event", "Signup"], &["Thank-you page", "Page visited", "/thank-you*"]])
    );
    // The picker offers the current top lists (never "(other)"), and the snippet's events.
    let img = img_path();
    assert_eq!(
        r["pagesOffered"],
        rows(&[
            &["", "Pick one of the top pages…"],
            &["/", "/"],
            &["/pricing", "/pricing"],
            &[&img, &img],
            &["/blog/launch", "/blog/launch"]
        ])
    );
    assert_eq!(r["clicksOffered"][1], json!(["button#cta", "button#cta — Start free trial"]));
    assert_eq!(r["clicksOffered"].as_array().map(Vec::len), Some(4), "{}", r["clicksOffered"]);
    let events: Vec<&str> =
        r["eventsOffered"].as_array().expect("events").iter().map(|o| o[0].as_str().unwrap_or_default()).collect();
    assert_eq!(events, ["", "form_submit", "outbound", "Signup", IMG]);
    assert_eq!(r["filledFromPick"], "/pricing");

    assert_eq!(
        r["posts"],
        json!([
            {"name": "Pricing visit", "kind": "pageview", "match": "/pricing"},
            {"name": "CTA", "kind": "click", "match": "button#cta"},
            {"name": "Newsletter", "kind": "event", "match": "newsletter_signup"},
        ])
    );
    assert_eq!(r["afterCreate"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        r["newGoalBackfill"],
        json!(["", "", "Counting past data…", "Counting past data…", "Counting past data…"]),
        "new goals say they are counting past data while the api backfills them"
    );
    assert_eq!(r["afterCreate"][4], json!(["Newsletter", "Custom event", "newsletter_signup"]));
    assert_eq!(r["goalsTable"][2], json!(["Pricing visit", "0", "0.0%"]), "stats reloaded after a goal was added");

    // invalid_goal: the api's message next to the field it names, focused and marked invalid.
    assert_eq!(
        r["invalid"]["errors"],
        json!({"name": "", "kind": "", "match": "match must be a path starting with / for a pageview goal", "form": ""})
    );
    assert_eq!(r["invalid"]["focused"], "goal-match");
    assert_eq!(r["invalid"]["ariaInvalid"], "true");
    assert_eq!(r["missingName"]["invalidRequests"], 1, "the refused goal was sent once");
    assert_eq!(r["missingName"]["requests"], 0, "an empty name is refused before any request");
    assert_eq!(r["missingName"]["errors"]["name"], "Give the goal a name.");

    assert_eq!(r["deletes"], json!(["/api/sites/site-v2/goals/goal-3"]));
    assert!(
        r["dialogs"]
            .as_array()
            .expect("dialogs")
            .iter()
            .any(|d| d.as_str().is_some_and(|d| d.contains("\"Pricing visit\""))),
        "delete asks first"
    );
    assert!(!r["afterDelete"].as_array().expect("rows").iter().any(|row| row[0] == "Pricing visit"), "{}", r["afterDelete"]);

    // At 20 goals the form is disabled and says why (the api refuses a 21st).
    assert_eq!(r["twentyFirst"]["error"], "invalid_goal");
    assert_eq!(r["full"]["limitShown"], true);
    assert_eq!(r["full"]["disabled"], json!(["goal-name", "goal-kind", "goal-match", "goal-pick", "goal-add"]));
    assert_inert(&r["end"], "goals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicking_a_top_page_filters_every_call_and_the_url_chip_and_history_follow() {
    let r = run("filter").await;
    let f = &r["filtered"];
    assert_eq!(f["chip"], json!({"shown": true, "text": "/pricing"}));
    assert_eq!(f["url"], "/dashboard?site=site-v2&timeframe=7d&page=%2Fpricing");
    assert_eq!(card(f, "pageviews"), ("2.3k".to_string(), "↑ 17%".to_string()));
    assert_eq!(f["tables"]["pages"], rows(&[&["/pricing", "2.3k"]]));
    assert_eq!(r["focusAfterFilter"], "filter-clear", "keyboard focus moves to the chip");
    // Every stats call made while filtered carries the page; so does the export.
    let calls = r["whileFiltered"].as_array().expect("calls");
    assert!(calls.len() >= 3, "{calls:?}");
    assert!(calls.iter().all(|q| q.as_str().is_some_and(|q| q.starts_with("page=%2Fpricing&"))), "{calls:?}");
    assert!(calls.contains(&json!("page=%2Fpricing&compare=previous&timeframe=30d")), "{calls:?}");
    assert_eq!(r["exportWhileFiltered"], json!(["page=%2Fpricing&timeframe=30d"]));
    assert_eq!(r["urlFiltered30d"], "/dashboard?site=site-v2&timeframe=30d&page=%2Fpricing");

    // Back: 7 days, still filtered; back again: unfiltered, and the calls say so.
    assert_eq!(r["back1"]["url"], "/dashboard?site=site-v2&timeframe=7d&page=%2Fpricing");
    assert_eq!(r["back1"]["chip"]["shown"], true);
    assert_eq!(r["back2"]["url"], "/dashboard?site=site-v2&timeframe=7d");
    assert_eq!(r["back2"]["chip"]["shown"], false);
    assert_eq!(card(&r["back2"], "pageviews").0, "12.3k");
    assert_eq!(r["afterBack2"], json!(["compare=previous&timeframe=7d"]), "one unfiltered stats call");
    assert_eq!(r["forward"]["url"], "/dashboard?site=site-v2&timeframe=7d&page=%2Fpricing");
    assert_eq!(card(&r["forward"], "pageviews").0, "2.3k");

    // The chip's button (from the keyboard) removes the filter.
    assert_eq!(r["cleared"]["url"], "/dashboard?site=site-v2&timeframe=7d");
    assert_eq!(r["afterClear"], json!(["compare=previous&timeframe=7d"]), "one unfiltered stats call");

    // A hostile path, chosen with the keyboard: filtered, encoded, shown as text, inert; the
    // URL opens the same view in a new tab.
    let h = &r["hostile"];
    assert_eq!(h["chip"]["text"], img_path());
    assert_eq!(card(h, "pageviews").0, "1.2k");
    assert_eq!(
        r["hostileQuery"],
        "page=%2F%3Cimg+src%3Dx+onerror%3D%22window.__xss%3D1%3Balert%281%29%22%3E&compare=previous&timeframe=7d"
    );
    assert_eq!(r["reopened"]["url"], h["url"]);
    assert_eq!(r["reopened"]["chip"]["text"], img_path());
    assert_inert(h, "hostile filter");
    assert_inert(&r["reopened"], "reopened hostile filter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_date_range_cannot_be_applied_while_invalid_and_a_valid_one_is_in_the_url() {
    let r = run("range").await;
    let today = r["initial"]["max"].as_str().expect("today").to_string();
    assert_eq!(r["initial"]["to"], today, "the inputs show the 7-day range");
    assert_eq!(r["initial"]["disabled"], false);
    for (case, message) in [
        ("backwards", "The start date must be on or before the end date."),
        ("future", "The end date cannot be in the future."),
        ("tooLong", "A range can span at most 366 days."),
        ("empty", "Choose a start and an end date."),
    ] {
        assert_eq!(r[case]["disabled"], true, "{case}: Apply disabled");
        assert_eq!(r[case]["message"], message, "{case}");
    }
    assert_eq!(r["requestsWhileInvalid"], 0, "Enter in an invalid range sends nothing");
    assert_eq!(r["longest"]["disabled"], false, "366 days is allowed");
    assert_eq!(r["valid"]["disabled"], false);
    let (from, to) = (r["valid"]["from"].as_str().expect("from"), r["valid"]["to"].as_str().expect("to"));
    assert_eq!(r["applied"]["url"], format!("/dashboard?site=site-v2&from={from}&to={to}"));
    assert_eq!(r["appliedQuery"], format!("compare=previous&from={from}&to={to}"));
    assert_eq!(r["applied"]["charts"]["series"]["labels"].as_array().map(Vec::len), Some(7));
    assert_eq!(
        r["pressed"],
        json!(["false", "false", "false", "false"]),
        "no timeframe button is pressed for a custom range"
    );
    assert_eq!(r["reloaded"]["state"]["from"], from, "a reload keeps the range");
    assert_eq!(r["reloaded"]["read"]["stats"]["from"], from);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_downloads_the_csv_of_the_current_view_as_served() {
    let r = run("export").await;
    for case in ["week", "filtered"] {
        let e = &r[case];
        assert_eq!(e["auth"], true, "{case}: the export call carries the bearer token");
        assert!(
            e["content"].as_str().is_some_and(|c| c.starts_with("start,pageviews,visitors,sessions,clicks,conversions\n")),
            "{case}: {}",
            e["content"]
        );
        assert_eq!(e["content"], e["served"], "{case}: the file is what the api served");
        assert!(
            e["name"].as_str().is_some_and(|n| n.starts_with("convertpulse-acme.example-") && n.ends_with(".csv")),
            "{case}: {}",
            e["name"]
        );
        assert_eq!(e["status"], format!("Downloaded {}", e["name"].as_str().unwrap_or_default()));
    }
    assert_eq!(r["week"]["query"], "timeframe=7d");
    assert_eq!(r["filtered"]["query"], "page=%2Fpricing&timeframe=24h");
    assert_eq!(r["filtered"]["content"].as_str().map(|c| c.lines().count()), Some(25), "a header and 24 hours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_link_is_created_copied_rotated_and_revoked_and_its_page_is_read_only() {
    let r = run("share").await;
    let (first, second) = (r["links"][0].as_str().expect("link"), r["links"][1].as_str().expect("link"));
    assert!(first.contains("/share/") && first.starts_with("http://127.0.0.1:"), "the full URL: {first}");
    assert_eq!(r["clipboard"], first, "the copy button copies the full URL");
    assert_eq!(r["createLabel"], "Rotate link");
    assert_ne!(first, second, "rotating makes a new link");
    assert!(r["oldLink"]["text"].as_str().is_some_and(|t| t.contains("This link is no longer valid")), "{}", r["oldLink"]);
    assert_eq!(r["oldLink"]["statsShown"], false);

    // The shared page: the figures, nothing of the owner's, no token sent.
    let s = &r["shared"];
    assert_eq!(card(s, "pageviews"), ("12.3k".to_string(), "↑ 23%".to_string()));
    assert_eq!(s["charts"]["series"]["dashed"], json!([false, false, false, true]));
    assert_eq!(s["tables"]["countries"][0], json!(["Germany", "1.8k"]));
    assert_eq!(r["ownerOnly"], json!([]), "no settings, key, snippet, goal editing, export or live view");
    let html = r["sharedHtml"].as_str().expect("html");
    assert!(!html.contains("cp_live_FAKEKEY"), "the site's key is nowhere on the shared page");
    assert_inert(s, "shared page");
    let requests = r["sharedRequests"].as_array().expect("requests");
    assert!(!requests.is_empty());
    for q in requests {
        assert!(
            q["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/api/public/") && (p.ends_with("/stats") || p.ends_with("/page"))),
            "only public stats and page views: {q}"
        );
        assert_eq!(q["auth"], false, "the owner's token (in this browser's storage) is never sent: {q}");
        assert_eq!(q["method"], "GET");
    }
    assert!(
        requests.iter().any(|q| q["query"] == "page=%2Fpricing&compare=previous&timeframe=7d"),
        "filtering works there too: {requests:?}"
    );
    assert_eq!(r["sharedFiltered"]["chip"]["text"], "/pricing");
    assert!(r["sharedFiltered"]["url"].as_str().is_some_and(|u| u.ends_with("?timeframe=7d&page=%2Fpricing")));
    assert_eq!(r["sharedBack"]["chip"]["shown"], false);

    // Revoked.
    assert_eq!(r["revokeStatus"], "The public link is revoked.");
    assert_eq!(r["linkShownAfterRevoke"], false);
    assert!(r["revoked"]["text"].as_str().is_some_and(|t| t.contains("This link is no longer valid")), "{}", r["revoked"]);
    assert_eq!(r["revoked"]["statsShown"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_counter_follows_the_realtime_figures_without_a_reload() {
    let r = run("live").await;
    assert_eq!(r["before"]["live"]["visitors"], "7");
    assert_eq!(r["after"]["live"]["visitors"], "1.2k");
    assert_eq!(r["after"]["live"]["pages"][0], json!(["/pricing", "1.2k"]));
    assert_eq!(r["after"]["charts"]["live"]["data"][0][29], 1234, "the last minute of the chart");
    assert_eq!(r["sameDocument"], true, "no reload");
    assert!(r["waitedMs"].as_u64().is_some_and(|ms| ms < 10_000), "polled every few seconds: {}", r["waitedMs"]);
    assert_inert(&r["after"], "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_shows_loading_and_error_states_and_recovers() {
    let r = run("states").await;
    // Every panel of the view, as the recovered view reads them: each must show the state
    // (an `all` over none would hold whatever the page showed).
    let recovered = &r["recovered"];
    let tables = recovered["tables"].as_object().expect("tables").len();
    let shown = recovered["panels"].as_object().expect("panels").values().filter(|p| **p == true).count();
    let charts = recovered["charts"].as_object().expect("charts").keys().filter(|id| *id != "live").count();
    let cards = recovered["cards"].as_object().expect("cards").len();
    assert!(shown > 0 && charts > 0 && cards > 0, "{recovered}");
    let states = |view: &Value, what: &str| -> Vec<String> {
        view[what].as_array().expect(what).iter().map(|t| t.as_str().unwrap_or("(not text)").to_string()).collect()
    };
    let loading = &r["loading"];
    assert_eq!(loading["busy"], "true");
    assert_eq!(states(loading, "tables"), vec!["Loading…"; tables], "{loading}");
    assert_eq!(states(loading, "charts"), vec!["Loading…"; charts], "{loading}");

    let failed = &r["failed"];
    assert!(
        failed["alert"].as_str().is_some_and(|a| a.starts_with("Could not load the figures: internal error")),
        "{failed}"
    );
    assert_eq!(states(failed, "tables"), vec!["Could not load."; shown], "{failed}");
    assert_eq!(states(failed, "charts"), vec!["Could not load"; charts], "{failed}");
    assert_eq!(states(failed, "cards"), vec!["–"; cards], "no figures of another view: {failed}");
    assert_eq!(r["recovered"]["error"], Value::Null, "Retry loads the view");
    assert_eq!(card(&r["recovered"], "pageviews").0, "12.3k");

    assert!(r["staleAlert"].as_str().is_some_and(|a| a.contains("Showing the last figures loaded")), "{}", r["staleAlert"]);
    assert_eq!(card(&r["stale"], "pageviews").0, "12.3k", "a failed refresh keeps the figures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_shared_page_work_at_375_px_and_from_the_keyboard() {
    let r = run("screens").await;
    assert_eq!(r["dashboard375"]["scrolls"], false, "no horizontal scroll at 375 px: {}", r["dashboard375"]);
    assert_eq!(r["share375"]["scrolls"], false, "no horizontal scroll at 375 px: {}", r["share375"]);
    let stops = r["tabStops"].as_array().expect("tab stops");
    for s in stops {
        let tag = s["tag"].as_str().unwrap_or_default();
        // A scrolling table holds nothing focusable of its own; Chromium lets the keyboard
        // scroll it. <body> is where Tab wraps around.
        let control = ["a", "button", "input", "select"].contains(&tag) || s["cls"] == "table-wrap" || tag == "body";
        assert!(control, "every tab stop is a control: {s}");
    }
    for wanted in ["/pricing", "Export CSV", "Add goal", "Create public link", "24h", "Apply"] {
        assert!(stops.iter().any(|s| s["text"] == wanted), "{wanted} is reachable with Tab");
    }
    let buttons = stops.iter().filter(|s| s["tag"] == "button" || s["tag"] == "a");
    assert!(buttons.clone().all(|s| s["outline"] == true), "focus is visible on buttons and links: {stops:?}");
    for shot in ["dashboard-v2-1280", "dashboard-v2-375", "share-1280", "share-375"] {
        assert!(std::path::Path::new(&format!("{}/{shot}.png", shots())).exists(), "screenshot {shot}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_changes_the_password_and_logs_out_on_the_server() {
    let r = run("account").await;
    assert!(r["driverError"].is_null(), "{}", r["driverError"]);
    assert_eq!(r["panelAtFirst"], json!({"hidden": true, "expanded": "false"}));
    assert_eq!(r["panelOpened"], json!({"visible": true, "expanded": "true", "focused": "current-password"}));

    // Checked in the page: nothing sent.
    assert_eq!(r["inline"]["current-password-error"], "Enter your current password.");
    assert_eq!(r["inline"]["new-password-error"], "Use at least 8 characters.");
    assert_eq!(r["sentAfterInline"], 0);
    // The server's refusal, next to the field; the session goes on.
    assert_eq!(r["wrong"]["current-password-error"], "The current password is wrong.");
    assert_eq!((r["wrong"]["new-password-error"].as_str(), r["wrong"]["password-status"].as_str()), (Some(""), Some("")));
    assert_eq!(r["tokenAfterWrong"], "fake-owner-token");

    // The change: the old token is over, the page logged in again and uses the new one.
    let new_token = r["changed"]["token"].as_str().expect("a new token");
    assert!(new_token.starts_with("fake-owner-token-"), "{new_token}");
    assert_eq!(r["changed"]["password-status"], "Your password is changed. Every other session is logged out.");
    assert_eq!(r["changed"]["url"], "/dashboard");
    assert_eq!(r["changed"]["fields"], json!(["", ""]), "the form is cleared");
    assert_eq!(r["oldTokenAfterChange"], 401);
    let used = r["tokensAfterChange"].as_array().expect("tokens");
    assert!(!used.is_empty() && used.iter().all(|t| t == new_token), "stats after the change use the new token: {used:?}");

    // Log out: asked of the server with the current token, then forgotten here.
    assert_eq!(r["logoutToken"], json!([new_token]));
    assert_eq!(r["loggedOut"], json!({"url": "/login?reason=logout", "stored": null, "notice": "You are logged out."}));
    assert_eq!(r["newTokenAfterLogout"], 401, "the server ended the token");
    let calls = r["accountCalls"].as_array().expect("calls");
    let paths: Vec<&str> = calls.iter().map(|c| c["path"].as_str().unwrap_or_default()).collect();
    assert_eq!(paths, ["/api/auth/password", "/api/auth/password", "/api/auth/login", "/api/auth/logout"]);
    assert_eq!(calls[1]["body"], json!({"current_password": "correct horse 1", "new_password": "brand new pass"}));
    assert_eq!(calls[2]["body"], json!({"email": "owner@example.com", "password": "brand new pass"}));
    assert!(std::path::Path::new(&format!("{}/account-1280.png", shots())).exists(), "screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_page_shows_its_attention_and_the_owner_opens_the_overlay() {
    let r = run("attention").await;
    let o = &r["owner"];
    assert_eq!(o["shown"], true);
    assert_eq!(o["title"], "On-page attention · /pricing");
    let table = |v: &Value, title: &str| {
        v["tables"].as_array().expect("tables").iter().find(|t| t["title"] == title).map(|t| t["rows"].clone())
    };
    assert_eq!(
        table(o, "Sections seen, in page order"),
        Some(json!([
            ["hero", "2,300", "98.1%", "6.4 s"],
            ["pricing", "1,200", "51.2%", "12.5 s"],
            [IMG, "10", "0.4%", "1.0 s"]
        ]))
    );
    assert_eq!(
        table(o, "Calls to action").map(|rows| rows[0].clone()),
        Some(json!(["a#buy — Buy now", "1,500", "240", "16.0%"]))
    );
    assert_eq!(table(o, "Rage clicks"), Some(json!([["img.hero", "12"]])));
    assert_eq!(table(o, "Dead clicks"), Some(json!([["div.price", "40"]])));
    assert_eq!(
        table(o, "Forms: started, sent, and where the rest left"),
        Some(json!([["form#signup", "300", "120", format!("email (90), {IMG} (3)")]]))
    );
    assert_eq!(o["scroll"], json!(["5%100.0%", "10%96.0%"]));
    assert_eq!(o["overlayButton"], json!(["Open overlay on my page"]));
    assert_eq!((o["xss"].clone(), o["injected"].clone()), (Value::Null, json!(0)), "hostile strings stay text");
    assert_eq!(r["pageCalls"][0], "path=%2Fpricing&timeframe=30d");
    assert_eq!(r["overlayPosts"], json!([{"path": "/pricing"}]));
    assert_eq!(r["opened"], "https://acme.example/pricing?cp_overlay=fake-overlay-token");
    assert_eq!(r["unfilteredHidden"], true);
    // The shared page: the same figures, no overlay.
    let s = &r["shared"];
    assert_eq!(table(s, "Rage clicks"), table(o, "Rage clicks"));
    assert_eq!(s["overlayButton"], json!([]));
    assert_eq!(r["publicCalls"][0], "path=%2Fpricing&timeframe=7d");
}

const PAST: &str = "Counting past data… This funnel is new: the visits kept from before it are still being counted, and its figures grow until that is done.";

/// One step of the funnel chart as the driver reads it: number, kind, match, sessions, the
/// share of the previous step, of the first step, the drop before it, and the bar's length.
fn step(no: &str, kind: &str, matcher: &str, figures: [&str; 4], share: &str) -> Value {
    let or_null = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    json!({"no": no, "kind": kind, "match": matcher, "sessions": figures[0], "prev": or_null(figures[1]),
        "start": figures[2], "drop": or_null(figures[3]), "share": share})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_funnel_chart_shows_each_steps_sessions_and_drops_and_the_editor_refuses_next_to_the_step() {
    let r = run("funnels").await;
    assert!(r["driverError"].is_null(), "{}", r["driverError"]);
    // 4,000 → 1,200 → 300 sessions: bars as long as the share of the first step, and the
    // figures in words (the api's rate_from_previous and rate_from_start, and the drop).
    let first = &r["first"];
    assert_eq!(
        first["steps"],
        json!([
            step("1", "Page visited", "/", ["4,000 sessions", "", "entered the funnel", ""], "100.0%"),
            step(
                "2",
                "Page visited",
                "/pricing",
                ["1,200 sessions", "30.0% of the previous step", "30.0% of the first step", "↓ 2,800 dropped off (70.0%)"],
                "30.0%"
            ),
            step(
                "3",
                "Custom event",
                "Signup",
                ["300 sessions", "25.0% of the previous step", "7.5% of the first step", "↓ 900 dropped off (75.0%)"],
                "7.5%"
            ),
        ])
    );
    assert_eq!(first["label"], "Sessions that reached each step of Signup funnel");
    assert_eq!(first["backfill"], Value::Null, "a funnel done backfilling says nothing of it");
    assert_eq!(first["chosen"], "funnel-1");
    assert_eq!(
        r["list"],
        json!([
            ["Signup funnel", "/ → /pricing → Signup", "Delete"],
            [format!("Checkout {IMG}"), format!("{SCRIPT} → /{IMG}"), "Counting past data…Delete"]
        ])
    );
    // The chart follows the dashboard's range.
    assert_eq!(
        r["callsAfter30d"].as_array().and_then(|c| c.last()),
        Some(&json!("/api/stats/site-v2/funnels/funnel-1?timeframe=30d")),
        "{}",
        r["callsAfter30d"]
    );

    // A funnel still backfilling, with hostile strings: said, and inert.
    let second = &r["second"];
    assert_eq!(second["backfill"], PAST);
    assert_eq!(second["steps"][0]["match"], SCRIPT);
    assert_eq!(second["steps"][1]["match"], img_path());
    assert_eq!(second["steps"][1]["drop"], "↓ 60 dropped off (75.0%)");
    assert_eq!(second["steps"][1]["start"], "25.0% of the first step");
    assert_inert(&r["secondView"], "funnel with hostile strings");

    // Refused in the page: nothing sent; then by the api: next to the step it names.
    assert_eq!(r["postsAfterInline"], 0);
    assert_eq!(r["inline"]["name"], "Give the funnel a name.");
    assert_eq!(r["inline"]["steps"], json!(["", "Enter what step 2 matches."]));
    assert_eq!(r["inline"]["focused"], "funnel-name");
    let refused = &r["refused"];
    assert_eq!(
        refused["steps"],
        json!(["", "steps[1].match: must be a path starting with '/', '*' matching any run of characters"])
    );
    assert_eq!((refused["name"].as_str(), refused["form"].as_str()), (Some(""), Some("")));
    assert_eq!(refused["focused"], "funnel-step-1-match");
    assert_eq!(refused["invalid"], json!(["funnel-step-1-match"]));
    assert_eq!(r["funnels375"]["scrolls"], false, "the funnel panel fits 375 px: {}", r["funnels375"]);

    // Created with a third step: chosen, charted, counting past data; the form is empty again.
    assert_eq!(r["focusAfterAdd"], "funnel-step-2-kind");
    assert_eq!(
        r["posts"][1],
        json!({"name": "Trial funnel", "steps": [
            {"kind": "pageview", "match": "/"}, {"kind": "pageview", "match": "/pricing"}, {"kind": "event", "match": "Trial started"}
        ]})
    );
    let created = &r["created"];
    assert_eq!(created["chart"]["chosen"], "funnel-3");
    assert_eq!(created["chart"]["backfill"], PAST);
    assert_eq!(created["chart"]["steps"][2]["match"], "Trial started");
    assert_eq!(created["list"][2], json!(["Trial funnel", "/ → /pricing → Trial started", "Counting past data…Delete"]));
    assert_eq!((created["name"].as_str(), created["rows"].as_u64()), (Some(""), Some(2)));

    // Deleted after the confirmation.
    assert_eq!(r["deletes"], json!(["/api/sites/site-v2/funnels/funnel-2"]));
    assert_eq!(r["afterDelete"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["afterDelete"][1][0], "Trial funnel");
    assert_inert(&r["end"], "funnels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_segment_picker_puts_the_segment_on_every_call_the_url_and_the_chip_and_the_editor_creates_one() {
    let r = run("segments").await;
    assert!(r["driverError"].is_null(), "{}", r["driverError"]);
    assert_eq!(
        r["initial"]["options"],
        json!([["", "All visitors"], ["seg-1", "Email visitors"], ["seg-2", format!("Hostile {SCRIPT}")]])
    );
    assert_eq!(r["initial"]["chip"], false);

    // Chosen: the segment's figures, every stats call and the URL carry it, the chip names it.
    let c = &r["chosen"];
    assert_eq!(card(&c["read"], "pageviews"), ("3.2k".to_string(), "↑ 7.0%".to_string()));
    assert_eq!(c["read"]["url"], "/dashboard?site=site-v2&timeframe=7d&segment=seg-1");
    assert_eq!((c["picker"]["value"].as_str(), c["picker"]["chip"].as_bool()), (Some("seg-1"), Some(true)));
    assert_eq!(c["picker"]["name"], "Email visitors");
    assert_eq!(c["picker"]["backfill"], false);
    let calls = c["calls"].as_array().expect("calls");
    assert!(
        !calls.is_empty() && calls.iter().all(|q| q.as_str().is_some_and(|q| q.starts_with("segment=seg-1&"))),
        "{calls:?}"
    );
    assert!(calls.contains(&json!("segment=seg-1&compare=previous&timeframe=7d")), "{calls:?}");
    // A new range keeps it; back and back again take it away, with one call without it.
    assert_eq!(r["month"]["url"], "/dashboard?site=site-v2&timeframe=30d&segment=seg-1");
    assert!(r["month"]["calls"].as_array().expect("calls").contains(&json!("segment=seg-1&compare=previous&timeframe=30d")));
    assert_eq!(r["back1"]["url"], "/dashboard?site=site-v2&timeframe=7d&segment=seg-1");
    assert_eq!(r["back1"]["picker"]["value"], "seg-1");
    assert_eq!(r["back2"]["url"], "/dashboard?site=site-v2&timeframe=7d");
    assert_eq!((r["back2"]["picker"]["value"].as_str(), r["back2"]["picker"]["chip"].as_bool()), (Some(""), Some(false)));
    assert_eq!(r["back2"]["calls"], json!(["compare=previous&timeframe=7d"]), "one call without the segment");

    // A hostile name still backfilling: as text, said; the chip's button shows all visitors.
    assert_eq!(r["hostile"]["picker"]["name"], format!("Hostile {SCRIPT}"));
    assert_eq!(r["hostile"]["picker"]["backfill"], true);
    assert_inert(&r["hostile"]["read"], "hostile segment");
    assert_eq!(r["cleared"]["url"], "/dashboard?site=site-v2&timeframe=7d");
    assert_eq!(r["cleared"]["focused"], "segment-select");

    // The editor: the api's refusal next to the condition it names, then a segment made.
    assert_eq!(r["list"][0], json!(["Email visitors", "Medium is email", "Delete"]));
    assert_eq!(r["refused"]["conditions"], json!(["filters[0].value: a country is a two-letter code such as DE"]));
    assert_eq!(r["refused"]["focused"], "segment-condition-0-value");
    assert_eq!(r["refused"]["invalid"], json!(["segment-condition-0-value"]));
    assert_eq!(
        r["posts"][1],
        json!({"name": "Germany", "filters": [
            {"dimension": "country", "op": "is", "value": "DE"}, {"dimension": "device", "op": "is_not", "value": "mobile"}
        ]})
    );
    assert_eq!(
        r["created"]["list"][2],
        json!(["Germany", "Country is DE and Device is not mobile", "Counting past data…Delete"])
    );
    assert_eq!(r["created"]["picker"]["options"][3], json!(["seg-3", "Germany"]));
    // Deleting the segment on screen goes back to all visitors.
    assert_eq!(r["deletes"], json!(["/api/sites/site-v2/segments/seg-3"]));
    assert_eq!(r["afterDelete"]["url"], "/dashboard?site=site-v2&timeframe=7d");
    assert_eq!(r["afterDelete"]["picker"]["options"].as_array().map(Vec::len), Some(3));
    assert_inert(&r["end"], "segments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicking_a_source_row_filters_every_call_and_the_url_chip_and_history_follow() {
    let r = run("rowFilter").await;
    assert!(r["driverError"].is_null(), "{}", r["driverError"]);
    assert_eq!(r["otherRowButtons"], 0, "an (other) row filters nothing");
    let s = &r["source"];
    assert_eq!(s["read"]["url"], "/dashboard?site=site-v2&timeframe=7d&filter=source%3Agoogle.com");
    assert_eq!(card(&s["read"], "pageviews"), ("4.6k".to_string(), "↑ 14%".to_string()));
    assert_eq!(s["chip"]["label"], "Source is");
    assert_eq!(s["chip"]["value"], "google.com");
    assert_eq!(s["chip"]["clear"], "Remove the source filter");
    assert_eq!(s["focused"], "filter-clear", "keyboard focus moves to the chip");
    let calls = s["calls"].as_array().expect("calls");
    assert!(
        !calls.is_empty() && calls.iter().all(|q| q.as_str().is_some_and(|q| q.starts_with("filter=source%3Agoogle.com&"))),
        "{calls:?}"
    );
    assert!(calls.contains(&json!("filter=source%3Agoogle.com&compare=previous&timeframe=7d")), "{calls:?}");
    // Only what the api answers under a filter is shown; the rest says why it is not there.
    let panels = s["read"]["panels"].as_object().expect("panels");
    let shown: Vec<&str> = panels.iter().filter(|(_, v)| **v == true).map(|(k, _)| k.as_str()).collect();
    assert_eq!(shown, ["pages", "goals"], "no empty \"nothing yet\" tables under a filter");
    assert!(
        s["chip"]["note"].as_str().is_some_and(|n| n.starts_with("Not available with this filter: Sources, Campaigns")),
        "{}",
        s["chip"]["note"]
    );
    assert_eq!(s["chip"]["clicksChart"], false);
    assert_eq!(s["read"]["tables"]["pages"], rows(&[&["/", "3k"], &["/pricing", "1.6k"]]));

    // A new range keeps the filter; a top page replaces it (never both on a call).
    assert_eq!(r["month"]["url"], "/dashboard?site=site-v2&timeframe=30d&filter=source%3Agoogle.com");
    assert!(
        r["month"]["calls"]
            .as_array()
            .expect("calls")
            .contains(&json!("filter=source%3Agoogle.com&compare=previous&timeframe=30d"))
    );
    assert_eq!(r["page"]["read"]["url"], "/dashboard?site=site-v2&timeframe=30d&page=%2Fpricing");
    assert_eq!(
        (r["page"]["chip"]["label"].as_str(), r["page"]["chip"]["value"].as_str()),
        (Some("Page is"), Some("/pricing"))
    );
    let page_calls = r["page"]["calls"].as_array().expect("calls");
    assert!(
        !page_calls.is_empty()
            && page_calls
                .iter()
                .all(|q| q.as_str().is_some_and(|q| q.starts_with("page=%2Fpricing&") && !q.contains("filter="))),
        "{page_calls:?}"
    );

    // Back: the source filter again, at 30 then 7 days; back again: unfiltered, one plain call.
    assert_eq!(r["back1"]["url"], "/dashboard?site=site-v2&timeframe=30d&filter=source%3Agoogle.com");
    assert_eq!(r["back1"]["chip"]["value"], "google.com");
    assert_eq!(r["back2"]["url"], "/dashboard?site=site-v2&timeframe=7d&filter=source%3Agoogle.com");
    let b = &r["back3"];
    assert_eq!(b["read"]["url"], "/dashboard?site=site-v2&timeframe=7d");
    assert_eq!((b["chip"]["shown"].as_bool(), b["chip"]["note"].as_str()), (Some(false), None));
    assert_eq!(card(&b["read"], "pageviews").0, "12.3k");
    assert_eq!(b["calls"], json!(["compare=previous&timeframe=7d"]), "one unfiltered stats call");
    assert!(b["read"]["panels"].as_object().expect("panels").values().all(|v| *v == true), "every table is back");

    // Other tables: the api's value in the call, a readable one on the chip.
    assert_eq!(r["country"]["url"], "/dashboard?site=site-v2&timeframe=7d&filter=country%3ADE");
    assert_eq!(
        (r["country"]["chip"]["label"].as_str(), r["country"]["chip"]["value"].as_str()),
        (Some("Country is"), Some("Germany"))
    );
    assert_eq!(r["device"]["url"], "/dashboard?site=site-v2&timeframe=7d&filter=device%3Adesktop");
    assert_eq!(r["device"]["chip"]["label"], "Device is");

    // A hostile campaign: encoded, shown as text, inert; its URL reopens the same view.
    let h = &r["hostile"];
    assert_eq!(h["chip"]["value"], IMG);
    assert_eq!(
        h["query"],
        "filter=campaign%3A%3Cimg+src%3Dx+onerror%3D%22window.__xss%3D1%3Balert%281%29%22%3E&compare=previous&timeframe=7d"
    );
    assert_inert(&h["read"], "hostile one-click filter");
    assert_eq!(r["filtered375"]["scrolls"], false, "no horizontal scroll at 375 px: {}", r["filtered375"]);
    assert_eq!(r["reopened"]["read"]["url"], h["read"]["url"]);
    assert_eq!(r["reopened"]["chip"], IMG);
    assert_inert(&r["reopened"]["read"], "reopened hostile filter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_variant_table_shows_intervals_chances_and_a_broken_split_and_revenue_time_and_properties_follow() {
    let r = run("experiments").await;
    assert!(r["driverError"].is_null(), "{}", r["driverError"]);
    let v = &r["view"];
    let t = &v["tables"];
    // Money in the browser's locale (en-US here), per currency, never converted.
    assert_eq!(card(v, "revenue").0, "€12,345.50 · $99.00");
    assert_eq!(
        v["headers"]["variants"],
        json!(["Variant", "Visits", "Conv.", "Rate", "95% interval", "Chance to beat control", "Revenue", "Time to conv."])
    );
    assert_eq!(
        t["variants"],
        rows(&[
            &["B", "2.1k", "171", "8.3%", "7.2%–9.6%", "98.8% to beat A", "€7,000.00 · $99.00", ""],
            &["A", "2.1k", "150", "7.1%", "6.1%–8.3%", "control", "€5,345.50", ""],
            &[IMG, "10", "0", "0.0%", "0.0%–27.8%", "3.1% to beat A", "—", ""]
        ])
    );
    // The interval as a bar on a 0-100 % scale, the rate as a tick inside it.
    let x = &r["extra"];
    assert_eq!(x["bars"], json!([["7.17%", "2.45%"], ["6.07%", "2.2%"], ["0%", "27.75%"]]));
    assert_eq!(x["ticks"], json!(["8.34%", "7.14%", "0%"]));
    assert_eq!(
        x["note"],
        "Sample ratio mismatch: visits are not split evenly across the variants (p = 0.004). Fix the split before trusting these results."
    );
    assert_eq!(x["noteWarning"], true);
    assert_eq!(
        r["early"]["note"],
        "Not enough data yet: every variant needs at least 100 visits and 10 conversions before the chance to beat the control settles."
    );
    assert_eq!(r["early"]["noteWarning"], false);

    assert_eq!(v["headers"]["referrers"], json!(["Source", "Visits", "Conv.", "CR", "Revenue", "Time to conv."]));
    assert_eq!(t["referrers"][0], json!(["google.com", "1.5k", "120", "8.0%", "€8,000.00 · $99.00", ""]));
    assert_eq!(t["referrers"][2], json!([IMG, "300", "10", "3.3%", "—", ""]));
    assert_eq!(x["sparks"][0], "<10s: 3, 10-30s: 20, 30s-1m: 15, 1-5m: 30, 5-30m: 13, 30m-2h: 4, >2h: 1");
    assert_eq!(t["goals"][0], json!([format!("Signup {IMG}"), "200", "4.8%", "€12,345.50 · $99.00"]));
    assert_eq!(t["mediums"][0], json!(["email", "700", "70", "10.0%", "€5,000.00"]));
    assert_eq!(
        x["ttc"],
        json!([
            ["<10s", "8%", "5 (2.9%)"],
            ["10-30s", "67%", "40 (23.5%)"],
            ["30s-1m", "50%", "30 (17.6%)"],
            ["1-5m", "100%", "60 (35.3%)"],
            ["5-30m", "42%", "25 (14.7%)"],
            ["30m-2h", "13%", "8 (4.7%)"],
            [">2h", "3%", "2 (1.2%)"]
        ])
    );
    assert_eq!(v["headers"]["entry-pages"], json!(["Path", "Visits", "Conv.", "Bounce"]));
    assert_eq!(t["entry-pages"], rows(&[&["/", "3k", "240", "41.2%"], &[&img_path(), "40", "0", "100.0%"]]));
    assert_eq!(t["exit-pages"], rows(&[&["/pricing", "1.8k"], &["/", "1.2k"], &[SCRIPT, "5"]]));

    // A custom event's row opens its properties; they follow the range, once per range.
    assert_eq!(
        r["props"],
        json!({"title": "Properties of Signup", "count": "321 events in this range.", "active": ["Signup"], "blocks": [
            ["plan", [["pro", "200"], ["basic", "100"], [IMG, "21"]]], ["revenue", [["49.5", "120"]]]
        ]})
    );
    assert_eq!(
        r["eventCalls"],
        json!(["/api/stats/site-v2/events/Signup?timeframe=7d", "/api/stats/site-v2/events/Signup?timeframe=30d"])
    );
    assert_eq!(r["noProps"]["title"], "Properties of outbound");
    assert_eq!(r["noProps"]["blocks"], json!([]));
    assert_eq!(r["closed"], true);
    assert_eq!(r["narrow"]["scrolls"], false, "the variant table fits 375 px: {}", r["narrow"]);
    assert_inert(v, "experiments");
    assert_inert(&r["end"], "experiments, after the properties");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_api_keys_are_listed_created_for_this_site_or_all_shown_once_and_deleted() {
    let r = run("apiKeys").await;
    assert!(r["driverError"].is_null(), "{}", r["driverError"]);
    assert_eq!(r["initial"], json!([[format!("Reports {IMG}"), "All sites", "2026-02-07", "Delete"]]));
    assert_eq!(r["inline"], json!({"error": "Give the key a name.", "focused": "key-name"}));
    assert_eq!(r["postsAfterInline"], 0);
    assert_eq!(
        r["posts"],
        json!([{"name": "Weekly <b>bold</b>", "sites": ["site-v2"]}, {"name": "Everything", "sites": "*"}])
    );
    let created = &r["created"];
    assert!(created["key"].as_str().is_some_and(|k| k.starts_with("cps_")), "{created}");
    assert_eq!((created["focused"].as_str(), created["name"].as_str()), (Some("key-value"), Some("")));
    let after = r["afterCreate"].as_array().expect("rows");
    assert_eq!(after[1][0], "Weekly <b>bold</b>");
    assert_eq!(after[1][1], "Acme landing", "a key of one site names it");
    assert_eq!(after[2][1], "All sites");
    assert_eq!(r["deletes"], json!(["/api/keys/key-1"]));
    assert_eq!(r["afterDelete"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["narrow"]["scrolls"], false, "the keys panel fits 375 px: {}", r["narrow"]);
    assert_inert(&r["end"], "api keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_the_weekly_report_and_alerts_are_managed_and_each_role_sees_only_its_controls() {
    let r = run("team").await;
    assert!(r["driverError"].is_null(), "{}", r["driverError"]);
    let ann = ["ann@example.com", "Admin", "Active", "Remove"];
    let bob = ["bob@example.com", "Viewer", "Invited until 2026-12-12", "Withdraw"];
    let carol = ["carol@example.com", "Admin", "Invited until 2026-12-12", "Withdraw"];
    assert_eq!(r["members"], json!([ann, bob]));
    assert_eq!(r["inlineMember"], json!({"error": "Give the email address to invite.", "focused": "member-email"}));
    assert_eq!(
        r["memberPosts"],
        json!([{"email": "Carol@Example.com", "role": "admin"}]),
        "one POST: the empty one stayed in the page"
    );
    assert_eq!(
        r["invite"],
        json!({"link": "http://127.0.0.1/invite/site-v2.secretmem-3", "shown": true, "focused": "invite-link"})
    );
    assert_eq!(r["afterInvite"], json!([ann, bob, carol]));
    assert_eq!(r["memberDeletes"], json!(["/api/sites/site-v2/members/mem-2"]));
    assert_eq!(r["afterRemove"], json!([ann, carol]));
    assert_eq!(r["dialogs"][0], "Remove bob@example.com from \"Acme landing\"? They lose access within seconds.");

    assert_eq!(r["weekly"], false);
    assert_eq!(r["reportPuts"], json!([{"weekly": true}]));
    assert_eq!(r["reportStatus"], "You get the report every Monday.");

    let rate = ["Conversion rate", "Drops by 30% or more", "24 h", "Delete"];
    let visitors = ["Visitors", "Rises by 50% or more", "3 h", "Delete"];
    assert_eq!(r["alerts"], json!([rate]));
    assert_eq!(r["alertRefused"], "percent: must be a whole number from 10 to 1000", "the api's message, as it is");
    assert_eq!(
        r["alertPosts"],
        json!([
            {"metric": "visitors", "change": "drop", "percent": 5, "window_hours": 24},
            {"metric": "visitors", "change": "spike", "percent": 50, "window_hours": 3}
        ])
    );
    assert_eq!(r["afterAlert"], json!([rate, visitors]));
    assert_eq!(r["alertDeletes"], json!(["/api/sites/site-v2/alerts/alert-1"]));
    assert_eq!(r["dialogs"][1], "Delete the alert on conversion rate?");
    assert_eq!(r["afterAlertDelete"], json!([visitors]));
    assert_eq!(r["narrow"]["scrolls"], false, "the team panels fit 375 px: {}", r["narrow"]);
    assert_inert(&r["end"], "team");

    // (panel or control) → shown to the owner, an admin, a viewer.
    let want = [
        ("members", [true, false, false]),
        ("report-panel", [true, true, true]),
        ("alerts", [true, true, false]),
        ("settings-form", [true, false, false]),
        ("rotate-key", [true, false, false]),
        ("import-form", [true, false, false]),
        ("share-panel", [true, true, false]),
        ("goal-form", [true, true, false]),
    ];
    for (id, [owner, admin, viewer]) in want {
        let got = ["owner", "admin", "viewer"].map(|role| r["roles"][role][id].as_bool());
        assert_eq!(got, [Some(owner), Some(admin), Some(viewer)], "{id} for the owner, an admin, a viewer");
    }
    // A list's Delete buttons ([shown, in all]) need the role its route needs.
    for (id, all, [owner, admin]) in
        [("goal-list", 2, [2, 2]), ("funnel-list", 2, [2, 2]), ("segment-list", 2, [2, 2]), ("import-list", 1, [1, 0])]
    {
        let got = ["owner", "admin", "viewer"].map(|role| r["roles"][role][format!("{id} delete")].clone());
        assert_eq!(
            got,
            [json!([owner, all]), json!([admin, all]), json!([0, all])],
            "{id}'s Delete for the owner, an admin, a viewer"
        );
    }
    assert_eq!(
        r["teamCalls"],
        json!({
            "admin": ["GET /api/sites/site-v2/report", "GET /api/sites/site-v2/alerts"],
            "viewer": ["GET /api/sites/site-v2/report"]
        }),
        "nobody asks for what its role may not see"
    );
}
