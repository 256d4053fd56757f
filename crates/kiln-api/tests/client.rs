#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The client against a one-shot HTTP responder on a loopback port: headers it sends, how it
//! maps answers and errors. (End-to-end tests against the real server live in kiln-server.)

use kiln_api::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one request with `status` and `body`; returns the base URL and the raw request text.
async fn one_shot(status: &str, body: &str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let handle = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read the head, then the body by content-length.
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        sock.write_all(response.as_bytes()).await.unwrap();
        sock.shutdown().await.unwrap();
        String::from_utf8_lossy(&buf).to_string()
    });
    (base, handle)
}

#[tokio::test]
async fn sends_token_and_decodes_answer() {
    let (base, server) = one_shot(
        "201 Created",
        r#"{"id":"job-1","name":"j","state":"SUBMITTED"}"#,
    )
    .await;
    let client = Client::new(&base, Some("s3cret".into())).unwrap();
    let got = client
        .submit(b"name: j\n".to_vec(), "application/yaml")
        .await
        .unwrap();
    assert_eq!(
        got,
        SubmitResponse {
            id: "job-1".into(),
            name: "j".into(),
            state: "SUBMITTED".into()
        }
    );
    let req = server.await.unwrap().to_ascii_lowercase();
    assert!(req.starts_with("post /v1/jobs http/1.1\r\n"), "{req}");
    assert!(req.contains("authorization: bearer s3cret\r\n"), "{req}");
    assert!(req.contains("content-type: application/yaml\r\n"), "{req}");
    assert!(req.ends_with("\r\n\r\nname: j\n"), "{req}");
}

#[tokio::test]
async fn query_parameters() {
    let (base, server) = one_shot("200 OK", r#"{"items":[],"next":null}"#).await;
    let client = Client::new(&base, None).unwrap();
    let got = client.jobs(Some("RUNNING"), Some(10), None).await.unwrap();
    assert_eq!(
        got,
        JobList {
            items: vec![],
            next: None
        }
    );
    let req = server.await.unwrap();
    assert!(
        req.starts_with("GET /v1/jobs?state=RUNNING&limit=10 HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(!req.to_ascii_lowercase().contains("authorization"), "{req}");
}

#[tokio::test]
async fn error_body_becomes_http_error() {
    let body = r#"{"error":{"code":"not_found","message":"no job job-9","field":null}}"#;
    let (base, _server) = one_shot("404 Not Found", body).await;
    let client = Client::new(&base, None).unwrap();
    let err = client.job("job-9").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("not_found"));
    assert_eq!(
        err.to_string(),
        "server answered 404: not_found: no job job-9"
    );
}

#[tokio::test]
async fn wrong_answer_is_decode_error() {
    let (base, _server) = one_shot("200 OK", r#"{"nope":1}"#).await;
    let client = Client::new(&base, None).unwrap();
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, ClientError::Decode(_)), "{err:?}");
}

#[tokio::test]
async fn refused_connection_is_transport_error() {
    // Bind then drop, so the port is (almost certainly) closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
    let err = client
        .heartbeat(&HeartbeatRequest {
            node_id: "n".into(),
            running: vec![],
            leaving: false,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
}
