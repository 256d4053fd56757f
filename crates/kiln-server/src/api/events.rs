//! `GET /v1/events`: the journal, read from the store on the blocking pool (never through the
//! driver thread), as a JSON page or, with `Accept: text/event-stream`, as Server-Sent Events
//! that follow it: `id:` is the event's sequence number, and a client reconnecting with
//! `Last-Event-ID` (or `?after=`) gets every later event once, in order.

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use kiln_api::{ErrorBody, EventPage, paths};
use kiln_core::journal::EventKind;
use kiln_store::EventQuery;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiQuery as Query;
use super::{ApiError, Shared, check_id, on_store};

/// The events routes; the caller adds the auth check.
pub(super) fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new().routes(routes!(events))
}

/// Events read per store call while streaming.
const STREAM_BATCH: u32 = 500;
/// How often a stream looks for new events when it has sent all there were.
const POLL: Duration = Duration::from_millis(200);
/// A comment line this often keeps idle connections (and proxies) open, and finds closed ones.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events after this sequence number [default: 0, from the oldest kept].
    after: Option<u64>,
    /// At most this many (a page; 1 to 1000) [default: 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only this job's events.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    job: Option<String>,
    /// Only events of these types, comma-separated (`InstanceFailed,JobSucceeded`); a name
    /// that is no type matches nothing.
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = r"^[A-Za-z]{1,40}(,[A-Za-z]{1,40}){0,49}$")]
    kind: Option<String>,
}

/// `Last-Event-ID`: documented here; read from the headers by the handler.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct ResumeHeader {
    /// Resume after this sequence number (as `after`; wins over it).
    #[param(rename = "Last-Event-ID", nullable = false)]
    last_event_id: Option<u64>,
}

/// The journal: every change of state and every operation, oldest first. A JSON page
/// (`after`, `limit`); with `Accept: text/event-stream`, Server-Sent Events that follow the
/// journal (`id:` = `seq`; a reconnect with `Last-Event-ID` resumes after it).
#[utoipa::path(get, path = paths::EVENTS, params(EventsQuery, ResumeHeader),
    responses(
        (status = 200, description = "a page of events, or with `Accept: text/event-stream` a stream of them",
         content(
            (EventPage = "application/json"),
            (String = "text/event-stream"))),
        (status = 400, body = ErrorBody)))]
async fn events(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit must be between 1 and 1000").field("limit"));
    }
    if let Some(job) = &q.job {
        check_id(job).map_err(|e| e.field("job"))?;
    }
    let (kinds, none) = match q.kind.as_deref() {
        None => (Vec::new(), false),
        Some(list) => {
            let names: Vec<&str> = list.split(',').collect();
            if names.len() > 50
                || names.iter().any(|n| {
                    n.is_empty() || n.len() > 40 || !n.bytes().all(|b| b.is_ascii_alphabetic())
                })
            {
                return Err(ApiError::bad(
                    "type must be event type names separated by commas (e.g. InstanceFailed,JobSucceeded)",
                )
                .field("type"));
            }
            let kinds: Vec<EventKind> = names.iter().filter_map(|n| n.parse().ok()).collect();
            // Only names that are no type: nothing can match.
            let none = kinds.is_empty();
            (kinds, none)
        }
    };
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad("Last-Event-ID must be an event's sequence number")
                        .field("Last-Event-ID")
                })?,
        ),
    };
    let mut query = EventQuery {
        after: resume.or(q.after).unwrap_or(0),
        job: q.job,
        kinds,
        project: None,
        limit,
    };
    let streaming = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"));
    if !streaming {
        let after = query.after;
        let page = if none {
            Vec::new()
        } else {
            on_store(&st, move |s| s.events(&query)).await?
        };
        let items: Vec<_> = page.iter().map(crate::wire::event_record).collect();
        let next = items.last().map_or(after, |e| e.seq);
        return Ok(Json(EventPage { items, next }).into_response());
    }
    if none {
        // Nothing can match: a stream that only keeps the connection alive.
        query.kinds = vec![EventKind::JobSubmitted];
        query.job = Some(String::new());
    }
    Ok(stream(st, query))
}

/// Follows the journal from `query.after` until the client goes away.
fn stream(st: Shared, mut query: EventQuery) -> Response {
    query.limit = STREAM_BATCH;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            let q = query.clone();
            let page = match on_store(&st, move |s| s.events(&q)).await {
                Ok(page) => page,
                Err(e) => {
                    // The store is unreachable for now: try again while the client stays.
                    tracing::warn!("event stream: {}", e.body.error.message);
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let full = page.len() == STREAM_BATCH as usize;
            if !page.is_empty() {
                let mut text = String::new();
                for e in &page {
                    let record = crate::wire::event_record(e);
                    let data = serde_json::to_string(&record).unwrap_or_default();
                    text.push_str(&kiln_api::sse::encode(e.seq, &record.kind, &data));
                    query.after = e.seq;
                }
                if tx.send(Ok(Bytes::from(text))).await.is_err() {
                    return;
                }
                quiet_since = tokio::time::Instant::now();
            } else if quiet_since.elapsed() >= KEEP_ALIVE {
                if tx
                    .send(Ok(Bytes::from_static(b": keep-alive\n\n")))
                    .await
                    .is_err()
                {
                    return;
                }
                quiet_since = tokio::time::Instant::now();
            }
            if !full {
                tokio::time::sleep(POLL).await;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
