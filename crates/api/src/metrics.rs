//! `GET /metrics` (Prometheus text format 0.0.4) and `GET /health`.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;
use updraft_engine::{MetricsSnapshot, UpdateMetrics};

/// Escapes a label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders a snapshot. The status gauge keeps Synapse's name and labels
/// (`synapse_background_update_status{database_name, server_name}`) so
/// existing dashboards work; the rest is updraft's own, per update.
pub fn render(snapshot: &MetricsSnapshot, server_name: &str) -> String {
    let mut out = String::new();
    let server = label(server_name);
    header(
        &mut out,
        "synapse_background_update_status",
        "gauge",
        "Background update status",
    );
    for (db, m) in snapshot {
        let _ = writeln!(
            out,
            "synapse_background_update_status{{database_name=\"{}\",server_name=\"{server}\"}} {}",
            label(db),
            m.state_code
        );
    }
    let updates = || {
        snapshot.iter().flat_map(|(db, m)| {
            m.updates.iter().map(move |(name, u)| {
                let labels = format!(
                    "database_name=\"{}\",update_name=\"{}\"",
                    label(db),
                    label(name)
                );
                (labels, u)
            })
        })
    };
    let simple: [Series; 4] = [
        (
            "updraft_background_update_items_total",
            "counter",
            "Items processed",
            |u| u.items_total,
        ),
        (
            "updraft_background_update_batches_total",
            "counter",
            "Batches run",
            |u| u.batches_total,
        ),
        (
            "updraft_background_update_failures_total",
            "counter",
            "Batches that failed",
            |u| u.failures_total,
        ),
        (
            "updraft_background_update_batch_size",
            "gauge",
            "Size of the running or last batch",
            |u| u.current_batch_size,
        ),
    ];
    for (name, kind, help, value) in simple {
        header(&mut out, name, kind, help);
        for (labels, u) in updates() {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(u));
        }
    }
    let name = "updraft_background_update_batch_duration_seconds";
    header(&mut out, name, "histogram", "Duration of one batch");
    for (labels, u) in updates() {
        let h = &u.batch_duration;
        for (le_ms, cumulative) in h.cumulative() {
            let le = le_ms.map_or("+Inf".to_owned(), |ms| (ms / 1000.0).to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_ms / 1000.0);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
    }
    out
}

/// A per-update series: name, Prometheus type, help, value.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&UpdateMetrics) -> u64,
);

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let snapshot = state.updater.metrics();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&snapshot, &state.config.server_name),
    )
}

/// `GET /health`: `OK` while the database answers, 503 otherwise.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    use axum::http::StatusCode;
    match state.db.execute("SELECT 1").await {
        Ok(_) => (StatusCode::OK, "OK"),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_engine::DatabaseMetrics;

    #[test]
    fn renders_prometheus_text() {
        let mut u = UpdateMetrics {
            items_total: 500,
            batches_total: 2,
            current_batch_size: 250,
            ..Default::default()
        };
        u.batch_duration.observe(20.0);
        u.batch_duration.observe(200.0);
        let snapshot: MetricsSnapshot = [(
            "master".to_owned(),
            DatabaseMetrics {
                state_code: 2,
                updates: [("populate_stats_process_rooms".to_owned(), u)].into(),
            },
        )]
        .into();
        let text = render(&snapshot, "hs.test");
        let has = |line: &str| {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            )
        };
        let l = "database_name=\"master\",update_name=\"populate_stats_process_rooms\"";
        has("synapse_background_update_status{database_name=\"master\",server_name=\"hs.test\"} 2");
        has(&format!("updraft_background_update_batch_size{{{l}}} 250"));
        has(&format!("updraft_background_update_items_total{{{l}}} 500"));
        has(&format!("updraft_background_update_batches_total{{{l}}} 2"));
        has(&format!(
            "updraft_background_update_failures_total{{{l}}} 0"
        ));
        let d = "updraft_background_update_batch_duration_seconds";
        has(&format!("{d}_bucket{{{l},le=\"0.01\"}} 0"));
        has(&format!("{d}_bucket{{{l},le=\"0.025\"}} 1"));
        has(&format!("{d}_bucket{{{l},le=\"0.25\"}} 2"));
        has(&format!("{d}_bucket{{{l},le=\"+Inf\"}} 2"));
        has(&format!("{d}_sum{{{l}}} 0.22"));
        has(&format!("{d}_count{{{l}}} 2"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
