//! The axum Router: every route, and the layers that keep bad requests from
//! ever reaching a handler as anything but a Matrix error.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

use crate::error::{ApiError, MAX_BODY_BYTES};
use crate::state::AppState;
use crate::{background_updates as bg, directory, metrics, rooms};

/// Knobs of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct RouterOptions {
    /// A request that takes longer gets 504 M_UNKNOWN "Request timed out".
    pub request_timeout: Duration,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            request_timeout: Duration::from_secs(60),
        }
    }
}

const ADMIN: &str = "/_synapse/admin/v1";
const UPDRAFT: &str = "/_updraft/admin/v1";

/// The whole API with default options.
pub fn router(state: AppState) -> Router {
    router_with(state, RouterOptions::default())
}

pub fn router_with(state: AppState, options: RouterOptions) -> Router {
    let timeout = options.request_timeout;
    Router::new()
        .route(
            &format!("{ADMIN}/background_updates/status"),
            get(bg::status),
        )
        .route(
            &format!("{ADMIN}/background_updates/enabled"),
            get(bg::get_enabled).post(bg::set_enabled),
        )
        .route(
            &format!("{ADMIN}/background_updates/start_job"),
            post(bg::start_job),
        )
        .route(&format!("{ADMIN}/rooms"), get(rooms::list_rooms))
        .route(&format!("{ADMIN}/rooms/{{room_id}}"), get(rooms::get_room))
        .route(
            "/_matrix/client/v3/user_directory/search",
            post(directory::search),
        )
        .route(
            &format!("{UPDRAFT}/background_updates/queue"),
            get(bg::queue),
        )
        .route(
            &format!("{UPDRAFT}/background_updates/queue/{{database}}/{{update_name}}"),
            delete(bg::cancel),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/health", get(metrics::health))
        .fallback(|| async { ApiError::UnknownPath })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(move |req, next| {
            guard(req, next, timeout)
        }))
        .with_state(state)
}

/// Refuses an oversized `Content-Length` before anything else (as Synapse's
/// HTTP layer does, ahead of auth) and bounds every request's duration.
async fn guard(req: Request, next: Next, timeout: Duration) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return ApiError::TooLarge.into_response();
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// Serves the API on `listener` until `shutdown` resolves; requests in
/// flight then finish before this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
