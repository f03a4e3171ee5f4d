//! The typed client against a scripted server (wiremock): error bodies map to
//! typed errors; connection refused and timeouts surface clearly.

use std::time::Duration;

use serde_json::json;
use updraft_api::{Client, ClientError};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn status_is_parsed_in_order_with_nulls() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/_synapse/admin/v1/background_updates/status"))
        .and(header("authorization", "Bearer tok"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"enabled":true,"current_updates":{"state":{"name":"b","total_item_count":0,"total_duration_ms":0.0,"average_items_per_ms":null},"master":{"name":"a","total_item_count":12,"total_duration_ms":30.0,"average_items_per_ms":0}}}"#,
        ))
        .mount(&server)
        .await;
    let status = Client::new(&server.uri())
        .unwrap()
        .with_token("tok")
        .status()
        .await
        .unwrap();
    assert!(status.enabled);
    let dbs: Vec<_> = status
        .current_updates
        .iter()
        .map(|(d, u)| (d.as_str(), u.name.as_str()))
        .collect();
    assert_eq!(dbs, [("state", "b"), ("master", "a")]);
    assert_eq!(status.current_updates[0].1.average_items_per_ms, None);
    assert_eq!(status.current_updates[1].1.average_items_per_ms, Some(0.0));
    assert_eq!(status.current_updates[1].1.total_item_count, 12);
}

#[tokio::test]
async fn matrix_errors_become_typed_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/_synapse/admin/v1/background_updates/start_job"))
        .and(body_json(json!({"job_name": "populate_stats_process_rooms"})))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{"errcode":"M_UNKNOWN","error":"Job populate_stats_process_rooms is already in queue of background updates."}"#,
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/_synapse/admin/v1/background_updates/enabled"))
        .respond_with(ResponseTemplate::new(401).set_body_string(
            r#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed.","soft_logout":false}"#,
        ))
        .mount(&server)
        .await;
    let client = Client::new(&server.uri()).unwrap().with_token("t");
    let e = client
        .start_job("populate_stats_process_rooms")
        .await
        .unwrap_err();
    match &e {
        ClientError::Matrix {
            status,
            errcode,
            error,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(errcode, "M_UNKNOWN");
            assert_eq!(
                error,
                "Job populate_stats_process_rooms is already in queue of background updates."
            );
        }
        other => panic!("expected a Matrix error, got {other:?}"),
    }
    let e = client.enabled().await.unwrap_err();
    assert_eq!(
        (e.status(), e.errcode()),
        (Some(401), Some("M_UNKNOWN_TOKEN"))
    );
    let ClientError::Matrix { body, .. } = e else {
        unreachable!()
    };
    assert_eq!(body["soft_logout"], json!(false));
}

#[tokio::test]
async fn non_matrix_answers_are_unexpected() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/_synapse/admin/v1/background_updates/enabled"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/_synapse/admin/v1/rooms/!r:x"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"room_id": 5}"#))
        .mount(&server)
        .await;
    let client = Client::new(&server.uri()).unwrap();
    let e = client.enabled().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Unexpected { status: 502, body, .. } if body.contains("bad gateway")),
        "{e:?}"
    );
    assert_eq!(e.errcode(), None);
    let e = client.room("!r:x").await.unwrap_err();
    assert!(
        matches!(e, ClientError::Unexpected { status: 200, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn rooms_and_search_send_the_right_requests() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/_synapse/admin/v1/rooms"))
        .and(query_param("order_by", "joined_members"))
        .and(query_param("dir", "b"))
        .and(query_param("search_term", "a b&c"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "offset": 0, "total_rooms": 1, "next_batch": null,
            "rooms": [{"room_id": "!a:x", "name": "A", "canonical_alias": null, "joined_members": 2,
              "joined_local_members": 1, "version": "10", "creator": "@u:x", "encryption": null,
              "federatable": true, "public": false, "join_rules": "invite", "guest_access": null,
              "history_visibility": "shared", "state_events": 6, "room_type": null}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_matrix/client/v3/user_directory/search"))
        .and(body_json(json!({"search_term": "ali", "limit": 3})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "limited": true, "results": [{"user_id": "@alice:x", "display_name": "Alice", "avatar_url": null}]
        })))
        .mount(&server)
        .await;
    let client = Client::new(&server.uri()).unwrap().with_token("t");
    let list = client
        .rooms(&updraft_api::client::RoomQuery {
            order_by: Some("joined_members".into()),
            dir: Some("b".into()),
            search_term: Some("a b&c".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            list.total_rooms,
            list.rooms[0].room_id.as_str(),
            list.rooms[0].federatable
        ),
        (1, "!a:x", true)
    );
    let found = client.search_users("ali", Some(3)).await.unwrap();
    assert!(found.limited);
    assert_eq!(found.results[0].display_name.as_deref(), Some("Alice"));
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let e = client.enabled().await.unwrap_err();
    match &e {
        ClientError::Connect { url, message } => {
            assert!(
                url.ends_with("/_synapse/admin/v1/background_updates/enabled"),
                "{url}"
            );
            assert!(
                message.to_lowercase().contains("connection refused"),
                "{message}"
            );
        }
        other => panic!("expected Connect, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_server_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("OK")
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let client = Client::with_timeout(&server.uri(), Duration::from_millis(200)).unwrap();
    let e = client.health().await.unwrap_err();
    assert!(
        matches!(e, ClientError::Timeout { timeout, .. } if timeout == Duration::from_millis(200)),
        "{e:?}"
    );
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[test]
fn bad_base_urls_are_refused() {
    assert!(matches!(
        Client::new("not a url"),
        Err(ClientError::BadUrl(_))
    ));
    assert!(matches!(
        Client::new("ftp://x"),
        Err(ClientError::BadUrl(_))
    ));
}
