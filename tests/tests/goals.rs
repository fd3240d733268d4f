//! Goals CRUD over HTTP: ownership, validation naming the field, the 20-goal cap.

use cp_tests::{batch, client::Api, stack::Stack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_are_created_listed_and_deleted_by_their_owner_only() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let owner = api.tenant("example.com", "UTC").await;
    let path = format!("/api/sites/{}/goals", owner.site_id);

    let (status, goal) =
        api.post(&path, Some(&owner.token), &json!({"name": "Thanks", "kind": "pageview", "match": "/thank-you*"})).await;
    assert_eq!(status, StatusCode::CREATED, "{goal}");
    assert_eq!(
        (goal["name"].as_str(), goal["kind"].as_str(), goal["match"].as_str()),
        (Some("Thanks"), Some("pageview"), Some("/thank-you*"))
    );
    assert!(goal["id"].as_str().is_some_and(|id| !id.is_empty()) && goal["created_at"].as_str().is_some(), "{goal}");
    let (status, second) =
        api.post(&path, Some(&owner.token), &json!({"name": "Signup", "kind": "event", "match": "Signup"})).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, list) = api.get(&path, Some(&owner.token)).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list.as_array().expect("list").iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(names, vec!["Thanks", "Signup"], "oldest first");

    // Someone else: 404 on every goal route, nothing changes.
    let intruder = api.register(&format!("{}@example.com", batch::id("intruder"))).await;
    let goal_path = format!("{path}/{}", goal["id"].as_str().expect("id"));
    let cases: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, path.as_str(), None),
        (Method::POST, path.as_str(), Some(json!({"name": "Mine", "kind": "event", "match": "x"}))),
        (Method::DELETE, goal_path.as_str(), None),
    ];
    for (method, p, body) in cases {
        let (status, err) = api.send(method.clone(), p, Some(&intruder), body.as_ref()).await;
        assert_eq!((status, err["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "case {method} {p}");
    }
    let (status, _) = api.send(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no token");

    let (status, _) = api.send(Method::DELETE, &goal_path, Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.send(Method::DELETE, &goal_path, Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already deleted");
    let (_, list) = api.get(&path, Some(&owner.token)).await;
    assert_eq!(list.as_array().map(|l| l.len()), Some(1));
    assert_eq!(list[0]["id"], second["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_goals_name_the_field_and_a_site_has_at_most_twenty() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let path = format!("/api/sites/{}/goals", t.site_id);
    let cases = [
        (json!({"kind": "event", "match": "Signup"}), "name"),
        (json!({"name": "", "kind": "event", "match": "Signup"}), "name"),
        (json!({"name": "x".repeat(101), "kind": "event", "match": "Signup"}), "name"),
        (json!({"name": 5, "kind": "event", "match": "Signup"}), "name"),
        (json!({"name": "G", "kind": "hover", "match": "Signup"}), "kind"),
        (json!({"name": "G", "match": "Signup"}), "kind"),
        (json!({"name": "G", "kind": "event"}), "match"),
        (json!({"name": "G", "kind": "event", "match": "e".repeat(65)}), "match"),
        (json!({"name": "G", "kind": "pageview", "match": "thank-you"}), "match"),
        (json!({"name": "G", "kind": "click", "match": ["a"]}), "match"),
    ];
    for (body, field) in cases {
        let (status, err) = api.post(&path, Some(&t.token), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "case {body}");
        assert_eq!(err["error"], "invalid_goal", "case {body}");
        assert!(err["message"].as_str().is_some_and(|m| m.starts_with(field)), "case {body}: {err}");
    }
    let (status, err) = api.post(&path, Some(&t.token), &json!("not an object")).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));

    for i in 0..20 {
        let (status, body) = api
            .post(&path, Some(&t.token), &json!({"name": format!("G{i}"), "kind": "click", "match": format!("button#b{i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "goal {i}: {body}");
    }
    let (status, err) = api.post(&path, Some(&t.token), &json!({"name": "G21", "kind": "event", "match": "x"})).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_goal")), "{err}");
    let (_, list) = api.get(&path, Some(&t.token)).await;
    assert_eq!(list.as_array().map(|l| l.len()), Some(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_goal_creations_racing_on_one_site_leave_exactly_twenty() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let owner = api.tenant("example.com", "UTC").await;
    let path = format!("/api/sites/{}/goals", owner.site_id);

    let requests = (0..40).map(|i| {
        let (api, path, token) = (api.clone(), path.clone(), owner.token.clone());
        tokio::spawn(async move {
            api.post(&path, Some(&token), &json!({"name": format!("Goal {i}"), "kind": "event", "match": format!("E{i}")}))
                .await
        })
    });
    let mut created = 0;
    for r in futures::future::join_all(requests).await {
        let (status, body) = r.expect("request task");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_goal", "{body}"),
            other => panic!("a racing create answered {other}: {body}"),
        }
    }
    assert_eq!(created, 20, "exactly the limit is created");
    let (status, list) = api.get(&path, Some(&owner.token)).await;
    assert_eq!((status, list.as_array().map(Vec::len)), (StatusCode::OK, Some(20)), "{list}");
}
