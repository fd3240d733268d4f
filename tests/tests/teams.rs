//! Teams (contract "Teams, reports, alerts"): every per-site route of the api answered for the
//! owner, an admin, a viewer, a stranger and the owner's Stats API key, walked from one table
//! that must cover every per-site operation of docs/openapi.yaml; invitations by link and by
//! mail (a real SMTP server); removal within 5 s.

use std::time::Duration;

use cp_tests::{batch::id, client::Api, smtp::SmtpSink, stack::Stack, wait};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    Viewer,
    Admin,
    Owner,
}

/// What a request needs besides the site: a fresh item of this kind for `{item}`.
#[derive(Debug, Clone, Copy)]
enum Item {
    None,
    Goal,
    Funnel,
    Segment,
    Member,
    Import,
    Alert,
}

/// One operation on a site: method, path (`{id}` the site, `{item}` a fresh item), the body,
/// the least role, whether a Stats API key may call it.
struct Row {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    item: Item,
    need: Need,
    key_reads: bool,
}

fn row(method: Method, path: &'static str, need: Need) -> Row {
    Row { method, path, body: None, item: Item::None, need, key_reads: false }
}

/// Every per-site operation. The last one deletes the site.
fn table() -> Vec<Row> {
    use Need::*;
    let key = |mut r: Row| {
        r.key_reads = true;
        r
    };
    let body = |mut r: Row, b: Value| {
        r.body = Some(b);
        r
    };
    let item = |mut r: Row, i: Item| {
        r.item = i;
        r
    };
    vec![
        row(Method::GET, "/api/sites/{id}", Viewer),
        body(row(Method::PATCH, "/api/sites/{id}", Owner), json!({"name": "Renamed"})),
        row(Method::POST, "/api/sites/{id}/rotate-key", Owner),
        key(row(Method::GET, "/api/stats/{id}", Viewer)),
        key(row(Method::GET, "/api/stats/{id}/export.csv", Viewer)),
        key(row(Method::GET, "/api/stats/{id}/realtime", Viewer)),
        key(row(Method::GET, "/api/stats/{id}/page?path=/", Viewer)),
        key(row(Method::GET, "/api/stats/{id}/events/Signup", Viewer)),
        body(row(Method::POST, "/api/sites/{id}/overlay", Admin), json!({"path": "/"})),
        row(Method::GET, "/api/sites/{id}/goals", Viewer),
        body(row(Method::POST, "/api/sites/{id}/goals", Admin), json!({"name": "G", "kind": "event", "match": "Signup"})),
        item(row(Method::DELETE, "/api/sites/{id}/goals/{item}", Admin), Item::Goal),
        key(row(Method::GET, "/api/sites/{id}/funnels", Viewer)),
        body(row(Method::POST, "/api/sites/{id}/funnels", Admin), json!({"name": "F", "steps": steps()})),
        item(row(Method::DELETE, "/api/sites/{id}/funnels/{item}", Admin), Item::Funnel),
        key(item(row(Method::GET, "/api/stats/{id}/funnels/{item}", Viewer), Item::Funnel)),
        row(Method::GET, "/api/sites/{id}/segments", Viewer),
        body(row(Method::POST, "/api/sites/{id}/segments", Admin), json!({"name": "S", "filters": filters()})),
        item(row(Method::DELETE, "/api/sites/{id}/segments/{item}", Admin), Item::Segment),
        row(Method::GET, "/api/sites/{id}/imports", Viewer),
        // Not a zip: an import taken and listed failed, which is all the role needs.
        body(row(Method::POST, "/api/sites/{id}/imports", Owner), json!({})),
        item(row(Method::DELETE, "/api/sites/{id}/imports/{item}", Owner), Item::Import),
        key(row(Method::GET, "/api/sites/{id}/export.zip", Viewer)),
        row(Method::POST, "/api/sites/{id}/share", Admin),
        row(Method::DELETE, "/api/sites/{id}/share", Admin),
        row(Method::GET, "/api/sites/{id}/members", Owner),
        body(row(Method::POST, "/api/sites/{id}/members", Owner), json!({"email": "new@example.org", "role": "viewer"})),
        item(row(Method::DELETE, "/api/sites/{id}/members/{item}", Owner), Item::Member),
        row(Method::GET, "/api/sites/{id}/alerts", Admin),
        body(row(Method::POST, "/api/sites/{id}/alerts", Admin), alert()),
        item(row(Method::DELETE, "/api/sites/{id}/alerts/{item}", Admin), Item::Alert),
        row(Method::GET, "/api/sites/{id}/report", Viewer),
        body(row(Method::PUT, "/api/sites/{id}/report", Viewer), json!({"weekly": true})),
        // Mail is off in this stack: allowed, it answers 409 mail_not_configured.
        row(Method::POST, "/api/sites/{id}/report/send", Viewer),
        row(Method::DELETE, "/api/sites/{id}", Owner),
    ]
}

/// Operations of docs/openapi.yaml that are not about one site, each with why.
const NOT_PER_SITE: &[(&str, &str)] = &[
    ("post /api/events/batch", "ingest"),
    ("post /api/event", "ingest: Plausible's Events API"),
    ("post /api/auth/register", "account"),
    ("post /api/auth/login", "account"),
    ("get /api/auth/me", "account"),
    ("post /api/auth/logout", "account"),
    ("post /api/auth/password", "account"),
    ("get /api/sites", "lists the caller's sites, member ones with their role: checked below"),
    ("post /api/sites", "creates a site of the caller's"),
    ("get /api/overlay/{token}", "public, by token"),
    ("get /api/keys", "account"),
    ("post /api/keys", "account"),
    ("delete /api/keys/{id}", "account"),
    ("get /api/public/{token}/stats", "public, by token"),
    ("get /api/public/{token}/page", "public, by token"),
    ("get /api/public/{token}/events/{name}", "public, by token"),
    ("post /api/v2/query", "names its site by domain, among the caller's own sites (tests/tests/plausible_query.rs)"),
    ("get /healthz", "health"),
    ("get /readyz", "health"),
    ("get /invite/{token}", "the invitation page"),
    ("post /invite/{token}", "by token: checked below"),
];

fn alert() -> Value {
    json!({"metric": "conversion_rate", "change": "drop", "percent": 30, "window_hours": 24})
}

fn steps() -> Value {
    json!([{"kind": "pageview", "match": "/"}, {"kind": "event", "match": "Signup"}])
}

fn filters() -> Value {
    json!([{"dimension": "source", "op": "is", "value": "google.com"}])
}

/// `method path` of every operation in docs/openapi.yaml.
fn openapi_operations() -> Vec<String> {
    let doc = std::fs::read_to_string(cp_tests::stack::workspace_path("docs/openapi.yaml")).expect("openapi");
    let mut ops = Vec::new();
    let mut path: Option<String> = None;
    for line in doc.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            path = None; // another top-level section
        }
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            path = Some(format!("/{p}"));
        }
        let method = line.strip_prefix("    ").and_then(|m| m.strip_suffix(':'));
        if let (Some(p), Some(m)) = (&path, method.filter(|m| ["get", "post", "put", "patch", "delete"].contains(m))) {
            ops.push(format!("{m} {p}"));
        }
    }
    ops
}

struct Team {
    api: Api,
    owner: String,
    admin: String,
    viewer: String,
    stranger: String,
    key: String,
    site: String,
}

async fn invite_and_accept(api: &Api, owner: &str, site: &str, email: &str, role: &str) -> (String, String) {
    let token = api.register(email).await;
    let (status, m) =
        api.post(&format!("/api/sites/{site}/members"), Some(owner), &json!({"email": email, "role": role})).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let url = m["invite_url"].as_str().expect("invite_url");
    let path = &url[url.find("/invite/").expect("an invite path")..];
    let (status, body) = api.post(path, Some(&token), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "accept: {body}");
    (token, m["id"].as_str().expect("id").to_string())
}

async fn team(stack: &Stack) -> Team {
    let api = Api::new(stack);
    let owner = api.register(&format!("{}@example.org", id("owner"))).await;
    let (site, _) = api.create_site(&owner, "team.example", "UTC").await;
    let (admin, _) = invite_and_accept(&api, &owner, &site, &format!("{}@example.org", id("admin")), "admin").await;
    let (viewer, _) = invite_and_accept(&api, &owner, &site, &format!("{}@example.org", id("viewer")), "viewer").await;
    let stranger = api.register(&format!("{}@example.org", id("stranger"))).await;
    let (status, k) = api.post("/api/keys", Some(&owner), &json!({"name": "k", "sites": "*"})).await;
    assert_eq!(status, StatusCode::CREATED, "{k}");
    Team { key: k["key"].as_str().expect("key").to_string(), api, owner, admin, viewer, stranger, site }
}

impl Team {
    /// A fresh item of `kind`, made by the owner.
    async fn fresh(&self, kind: Item) -> String {
        let (path, body) = match kind {
            Item::None => return String::new(),
            Item::Goal => ("goals", json!({"name": id("g"), "kind": "event", "match": "Signup"})),
            Item::Funnel => ("funnels", json!({"name": id("f"), "steps": steps()})),
            Item::Segment => ("segments", json!({"name": id("s"), "filters": filters()})),
            Item::Member => ("members", json!({"email": format!("{}@example.org", id("m")), "role": "viewer"})),
            Item::Alert => ("alerts", alert()),
            Item::Import => {
                let (status, v) =
                    self.api.post(&format!("/api/sites/{}/imports", self.site), Some(&self.owner), &json!({})).await;
                assert_eq!(status, StatusCode::ACCEPTED, "imports: {v}");
                return v["id"].as_str().expect("id").to_string();
            }
        };
        let (status, v) = self.api.post(&format!("/api/sites/{}/{path}", self.site), Some(&self.owner), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {v}");
        v["id"].as_str().expect("id").to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_per_site_route_answers_each_role_as_the_contract_says() {
    let stack = Stack::start().await;
    let t = team(&stack).await;
    let rows = table();
    let covered: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.method.as_str().to_lowercase(),
                r.path.split('?').next().unwrap_or_default().replace("{item}", "ITEM")
            )
        })
        .collect();
    let ops = openapi_operations();
    assert!(ops.len() > 40 && ops.contains(&"delete /api/sites/{id}".to_string()), "{ops:?}");
    for op in ops {
        let listed = NOT_PER_SITE.iter().any(|(o, _)| *o == op)
            || covered.iter().any(|c| {
                let (cm, cp) = c.split_once(' ').unwrap_or_default();
                let (om, opath) = op.split_once(' ').unwrap_or_default();
                cm == om
                    && cp.split('/').count() == opath.split('/').count()
                    && cp
                        .split('/')
                        .zip(opath.split('/'))
                        .all(|(a, b)| a == b || a == "ITEM" && b.starts_with('{') || a == "Signup" && b == "{name}")
            });
        assert!(listed, "{op} of docs/openapi.yaml is in neither the role table nor NOT_PER_SITE");
    }

    let callers: [(&str, &str, Option<Need>); 5] = [
        ("stranger", &t.stranger, None),
        ("key", &t.key, None),
        ("viewer", &t.viewer, Some(Need::Viewer)),
        ("admin", &t.admin, Some(Need::Admin)),
        ("owner", &t.owner, Some(Need::Owner)),
    ];
    for r in &rows {
        for (who, token, role) in callers {
            if r.method == Method::DELETE && r.path == "/api/sites/{id}" && who == "owner" {
                continue; // last, below
            }
            let item = t.fresh(r.item).await;
            let path = r.path.replace("{id}", &t.site).replace("{item}", &item);
            let (status, body) = t.api.send(r.method.clone(), &path, Some(token), r.body.as_ref()).await;
            let case = format!("{who} {} {}: {status} {body}", r.method, r.path);
            match (who, role) {
                ("key", _) if r.key_reads => assert_eq!(status, StatusCode::OK, "{case}"),
                ("key", _) => {
                    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("read_only")), "{case}")
                }
                (_, None) => {
                    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{case}")
                }
                (_, Some(have)) if have < r.need => {
                    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{case}")
                }
                _ => assert!(
                    status.is_success()
                        || (status, body["error"].as_str()) == (StatusCode::CONFLICT, Some("mail_not_configured")),
                    "{case}"
                ),
            }
        }
    }
    let (status, _) = t.api.send(Method::DELETE, &format!("/api/sites/{}", t.site), Some(&t.owner), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t.api.get(&format!("/api/stats/{}", t.site), Some(&t.viewer)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted site's members see nothing");
    let (_, sites) = t.api.get("/api/sites", Some(&t.viewer)).await;
    assert_eq!(sites, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_is_taken_once_by_its_email_and_a_removed_member_loses_the_site_within_five_seconds() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let stack = Stack::start_with(&[
        ("CP_SMTP_URL", url.as_str()),
        ("CP_MAIL_FROM", "ConvertPulse <team@convertpulse.test>"),
        ("CP_PUBLIC_URL", "https://cp.example"),
    ])
    .await;
    let api = Api::new(&stack);
    let owner = api.register(&format!("{}@example.org", id("owner"))).await;
    let (site, _) = api.create_site(&owner, "team.example", "UTC").await;
    let email = format!("{}@example.org", id("ann"));
    let ann = api.register(&email).await;
    let other = api.register(&format!("{}@example.org", id("bob"))).await;

    let (status, m) =
        api.post(&format!("/api/sites/{site}/members"), Some(&owner), &json!({"email": email, "role": "viewer"})).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let invite_url = m["invite_url"].as_str().expect("invite_url").to_string();
    assert!(invite_url.starts_with(&format!("https://cp.example/invite/{site}.")), "{invite_url}");
    assert_eq!(
        (m["email"].as_str(), m["role"].as_str(), m["status"].as_str()),
        (Some(email.as_str()), Some("viewer"), Some("invited"))
    );
    let path = invite_url.trim_start_matches("https://cp.example").to_string();

    // The mail, exactly.
    let mails = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!((mails[0].to.as_str(), mails[0].subject.as_str()), (email.as_str(), "Invitation to Landing on ConvertPulse"));
    assert_eq!(
        mails[0].text.as_deref(),
        Some(format!("You are invited to see Landing (team.example) on ConvertPulse as viewer.\n\nAccept with the account of {email}:\n{invite_url}\n\nThe link is good for 7 days.\n").as_str())
    );
    assert_eq!(
        mails[0].html.as_deref(),
        Some(format!("<p>You are invited to see <b>Landing</b> (team.example) on ConvertPulse as viewer.</p>\n<p>Accept with the account of {email}:<br><a href=\"{invite_url}\">{invite_url}</a></p>\n<p>The link is good for 7 days.</p>\n").as_str())
    );

    // The page, then accepting: only the invited email; once.
    let page = api.http.get(format!("{}{path}", api.api)).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let (status, body) = api.post(&path, Some(&other), &json!({})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{body}");
    let (status, body) = api.post(&path, Some(&ann), &json!({})).await;
    assert_eq!(
        (status, body["id"].as_str(), body["role"].as_str()),
        (StatusCode::OK, Some(site.as_str()), Some("viewer")),
        "{body}"
    );
    for (case, p) in
        [("used", path.clone()), ("unknown", format!("/invite/{site}.0000")), ("no site", "/invite/nothing".to_string())]
    {
        let (status, body) = api.post(&p, Some(&ann), &json!({})).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{case}: {body}");
    }
    let (_, sites) = api.get("/api/sites", Some(&ann)).await;
    assert_eq!(sites.as_array().map(Vec::len), Some(1), "{sites}");
    assert_eq!((sites[0]["id"].as_str(), sites[0]["role"].as_str()), (Some(site.as_str()), Some("viewer")));
    let (_, members) = api.get(&format!("/api/sites/{site}/members"), Some(&owner)).await;
    assert_eq!(members, json!([{"id": m["id"], "email": email, "role": "viewer", "status": "active"}]));
    let (status, _) = api.get(&format!("/api/stats/{site}"), Some(&ann)).await;
    assert_eq!(status, StatusCode::OK);

    // Removal.
    let (status, _) = api
        .send(Method::DELETE, &format!("/api/sites/{site}/members/{}", m["id"].as_str().expect("id")), Some(&owner), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let removed = Instant::now();
    wait::until_within("the removed member to lose the site", removed, Duration::from_secs(5), || async {
        let (status, _) = api.get(&format!("/api/stats/{site}"), Some(&ann)).await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    let (_, sites) = api.get("/api/sites", Some(&ann)).await;
    assert_eq!(sites, json!([]));
    assert_eq!(sink.received().len(), 1, "one mail for one invitation");
}
