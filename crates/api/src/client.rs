//! A typed async client for every endpoint of the server, for the harness,
//! the CLI and tests. Matrix error bodies become [`ClientError::Matrix`];
//! connection failures and timeouts are errors of their own.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there, or the connection broke.
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    /// No answer within the client's timeout.
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// The server answered with a Matrix error.
    #[error("{status} {errcode}: {error}")]
    Matrix {
        status: u16,
        errcode: String,
        error: String,
        /// The whole body (e.g. `soft_logout`).
        body: Value,
    },
    /// Any other non-success answer, or a body that is not what the endpoint promises.
    #[error("unexpected response from {url} ({status}): {body}")]
    Unexpected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("invalid base URL {0:?}")]
    BadUrl(String),
}

impl ClientError {
    /// The Matrix errcode, if the server sent one.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            ClientError::Matrix { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Matrix { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// One database's current update in Synapse's status body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurrentUpdate {
    pub name: String,
    pub total_item_count: u64,
    pub total_duration_ms: f64,
    /// `None` before the first batch.
    pub average_items_per_ms: Option<f64>,
}

/// `GET /_synapse/admin/v1/background_updates/status`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdatesStatus {
    pub enabled: bool,
    /// `(database, update)` in the order the server lists them.
    pub current_updates: Vec<(String, CurrentUpdate)>,
}

/// One database's runner in updraft's queue view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunnerInfo {
    pub database: String,
    /// `ABORTED`, `DISABLED`, `NOT_STARTED`, `RUNNING_UPDATE` or `COMPLETE`.
    pub state: String,
    /// Synapse's number for the state.
    pub state_code: i32,
    pub reason: String,
    pub enabled: bool,
    pub current: Option<CurrentUpdate>,
    pub last_error: Option<Value>,
    pub queue: Vec<QueueEntry>,
    pub estimate: Option<Value>,
    pub eta_ms: Option<f64>,
}

/// One queued row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub update_name: String,
    pub progress_json: String,
    pub depends_on: Option<String>,
    pub ordering: i32,
    pub has_handler: bool,
    pub waiting_for: Option<String>,
}

/// One room of `GET /_synapse/admin/v1/rooms[/{roomId}]`; `avatar` and
/// `topic` are only in the single-room answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub room_id: String,
    pub name: Option<String>,
    pub canonical_alias: Option<String>,
    pub joined_members: Option<i64>,
    pub joined_local_members: Option<i64>,
    pub version: Option<String>,
    pub creator: Option<String>,
    pub encryption: Option<String>,
    pub federatable: bool,
    pub public: bool,
    pub join_rules: Option<String>,
    pub guest_access: Option<String>,
    pub history_visibility: Option<String>,
    pub state_events: Option<i64>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    pub room_type: Option<String>,
}

/// A page of `GET /_synapse/admin/v1/rooms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomList {
    pub offset: i64,
    pub rooms: Vec<Room>,
    pub total_rooms: i64,
    pub next_batch: Option<i64>,
    pub prev_batch: Option<i64>,
}

/// Parameters of the room list; `None` leaves Synapse's default.
#[derive(Clone, Debug, Default)]
pub struct RoomQuery {
    pub from: Option<i64>,
    pub limit: Option<i64>,
    pub order_by: Option<String>,
    /// `"f"` or `"b"`.
    pub dir: Option<String>,
    pub search_term: Option<String>,
    pub public_rooms: Option<bool>,
    pub empty_rooms: Option<bool>,
}

/// One result of a user directory search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    pub user_id: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    pub limited: bool,
    pub results: Vec<SearchResult>,
}

/// A client bound to one server and (optionally) one access token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    timeout: Duration,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8008`) with a 30 s timeout.
    pub fn new(base: &str) -> Result<Client, ClientError> {
        Client::with_timeout(base, Duration::from_secs(30))
    }

    pub fn with_timeout(base: &str, timeout: Duration) -> Result<Client, ClientError> {
        let parsed = url::Url::parse(base).map_err(|_| ClientError::BadUrl(base.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::BadUrl(base.to_owned()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Connect {
                url: base.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: None,
            timeout,
        })
    }

    /// The same client sending `Authorization: Bearer TOKEN`.
    pub fn with_token(&self, token: impl Into<String>) -> Client {
        Client {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A URL whose path segments are percent-encoded as RFC 3986 path
    /// segments (a room id's `!` and `:` stay, `/`, `%`, `?`, `#` are escaped).
    fn segments_url(&self, segments: &[&str]) -> String {
        let mut url = self.base.clone();
        for segment in segments {
            url.push('/');
            for b in segment.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
                    url.push(b as char);
                } else {
                    url.push_str(&format!("%{b:02X}"));
                }
            }
        }
        url
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(u16, String), ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(url, e))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| self.transport_error(url, e))?;
        Ok((status, body))
    }

    fn transport_error(&self, url: &str, e: reqwest::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout {
                url: url.to_owned(),
                timeout: self.timeout,
            }
        } else {
            // reqwest's top-level message is terse; the cause says "connection refused".
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message = format!("{message}: {s}");
                source = s.source();
            }
            ClientError::Connect {
                url: url.to_owned(),
                message,
            }
        }
    }

    /// Sends a request and decodes a JSON success body as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, ClientError> {
        let (status, body) = self.send(request, url).await?;
        let unexpected = |body: String| ClientError::Unexpected {
            url: url.to_owned(),
            status,
            body,
        };
        if (200..300).contains(&status) {
            return serde_json::from_str(&body).map_err(|e| unexpected(format!("{e}: {body}")));
        }
        match serde_json::from_str::<Value>(&body) {
            Ok(v) => match (
                v.get("errcode").and_then(Value::as_str),
                v.get("error").and_then(Value::as_str),
            ) {
                (Some(errcode), error) => Err(ClientError::Matrix {
                    status,
                    errcode: errcode.to_owned(),
                    error: error.unwrap_or("").to_owned(),
                    body: v.clone(),
                }),
                _ => Err(unexpected(body)),
            },
            Err(_) => Err(unexpected(body)),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        self.call(self.http.get(&url), &url).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, ClientError> {
        let url = self.url(path);
        self.call(self.http.post(&url).json(body), &url).await
    }

    /// `GET /_synapse/admin/v1/background_updates/status`.
    pub async fn status(&self) -> Result<UpdatesStatus, ClientError> {
        let path = "/_synapse/admin/v1/background_updates/status";
        let v: Value = self.get(path).await?;
        parse_status(&v).ok_or_else(|| ClientError::Unexpected {
            url: self.url(path),
            status: 200,
            body: v.to_string(),
        })
    }

    /// `GET /_synapse/admin/v1/background_updates/enabled`.
    pub async fn enabled(&self) -> Result<bool, ClientError> {
        let v: Enabled = self
            .get("/_synapse/admin/v1/background_updates/enabled")
            .await?;
        Ok(v.enabled)
    }

    /// `POST /_synapse/admin/v1/background_updates/enabled`: pause or resume.
    pub async fn set_enabled(&self, enabled: bool) -> Result<bool, ClientError> {
        let v: Enabled = self
            .post(
                "/_synapse/admin/v1/background_updates/enabled",
                &json!({ "enabled": enabled }),
            )
            .await?;
        Ok(v.enabled)
    }

    /// `POST /_synapse/admin/v1/background_updates/start_job`.
    pub async fn start_job(&self, job_name: &str) -> Result<(), ClientError> {
        let _: Value = self
            .post(
                "/_synapse/admin/v1/background_updates/start_job",
                &json!({ "job_name": job_name }),
            )
            .await?;
        Ok(())
    }

    /// `GET /_synapse/admin/v1/rooms/{roomId}`.
    pub async fn room(&self, room_id: &str) -> Result<Room, ClientError> {
        let url = self.segments_url(&["_synapse", "admin", "v1", "rooms", room_id]);
        self.call(self.http.get(&url), &url).await
    }

    /// `GET /_synapse/admin/v1/rooms`.
    pub async fn rooms(&self, q: &RoomQuery) -> Result<RoomList, ClientError> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                query.append_pair(k, &v);
            }
        };
        add("from", q.from.map(|v| v.to_string()));
        add("limit", q.limit.map(|v| v.to_string()));
        add("order_by", q.order_by.clone());
        add("dir", q.dir.clone());
        add("search_term", q.search_term.clone());
        add("public_rooms", q.public_rooms.map(|v| v.to_string()));
        add("empty_rooms", q.empty_rooms.map(|v| v.to_string()));
        let query = query.finish();
        self.get(&format!("/_synapse/admin/v1/rooms?{query}")).await
    }

    /// `POST /_matrix/client/v3/user_directory/search`.
    pub async fn search_users(
        &self,
        term: &str,
        limit: Option<u64>,
    ) -> Result<SearchResults, ClientError> {
        let mut body = json!({ "search_term": term });
        if let Some(limit) = limit {
            body["limit"] = json!(limit);
        }
        self.post("/_matrix/client/v3/user_directory/search", &body)
            .await
    }

    /// `GET /_updraft/admin/v1/background_updates/queue`.
    pub async fn queue(&self) -> Result<Vec<RunnerInfo>, ClientError> {
        let v: QueueBody = self
            .get("/_updraft/admin/v1/background_updates/queue")
            .await?;
        Ok(v.databases)
    }

    /// `DELETE /_updraft/admin/v1/background_updates/queue/{database}/{update}`:
    /// returns the names removed.
    pub async fn cancel(
        &self,
        database: &str,
        update_name: &str,
    ) -> Result<Vec<String>, ClientError> {
        let url = self.segments_url(&[
            "_updraft",
            "admin",
            "v1",
            "background_updates",
            "queue",
            database,
            update_name,
        ]);
        let v: Removed = self.call(self.http.delete(&url), &url).await?;
        Ok(v.removed)
    }

    /// `GET /metrics` as Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        self.text("/metrics").await
    }

    /// `GET /health`: `Ok(())` when the server and its database answer.
    pub async fn health(&self) -> Result<(), ClientError> {
        self.text("/health").await.map(|_| ())
    }

    async fn text(&self, path: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let (status, body) = self.send(self.http.get(&url), &url).await?;
        if status == 200 {
            Ok(body)
        } else {
            Err(ClientError::Unexpected { url, status, body })
        }
    }
}

#[derive(Deserialize)]
struct Enabled {
    enabled: bool,
}

#[derive(Deserialize)]
struct QueueBody {
    databases: Vec<RunnerInfo>,
}

#[derive(Deserialize)]
struct Removed {
    removed: Vec<String>,
}

/// Reads Synapse's status body, keeping the databases' order.
pub fn parse_status(v: &Value) -> Option<UpdatesStatus> {
    let enabled = v.get("enabled")?.as_bool()?;
    let mut current_updates = Vec::new();
    for (db, update) in v.get("current_updates")?.as_object()? {
        let update: CurrentUpdate = serde_json::from_value(update.clone()).ok()?;
        current_updates.push((db.clone(), update));
    }
    Some(UpdatesStatus {
        enabled,
        current_updates,
    })
}
