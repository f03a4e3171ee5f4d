//! User directory search (SEMANTICS §7), as the client endpoint serves it:
//! visibility (public rooms, shared private rooms, or everyone with
//! `search_all_users`), locked users hidden unless `show_locked_users`,
//! prefix-or-exact word matching and Synapse's ranking on each engine.

use std::cmp::Ordering;

use serde::Serialize;
use sqlx::Row;
use updraft_engine::Db;

use crate::config::Config;
use crate::text::{normalise, parse_words};

/// One user in the results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SearchHit {
    pub user_id: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// The endpoint's response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SearchResponse {
    pub limited: bool,
    pub results: Vec<SearchHit>,
}

/// Synapse's PostgreSQL query uses at most this many words.
const MAX_PG_WORDS: usize = 10;

/// Searches the directory for `searcher`. A term without words finds nobody.
pub async fn search_users(
    db: &Db,
    config: &Config,
    searcher: &str,
    term: &str,
    limit: u64,
) -> Result<SearchResponse, sqlx::Error> {
    let words = parse_words(&normalise(term));
    if words.is_empty() {
        return Ok(SearchResponse {
            limited: false,
            results: Vec::new(),
        });
    }
    let dir = &config.user_directory;
    let mut hits = match db {
        Db::Sqlite(pool) => {
            let mut visible = if dir.search_all_users {
                "t.user_id != ?1".to_owned()
            } else {
                "(EXISTS (SELECT 1 FROM users_in_public_rooms WHERE user_id = t.user_id)
                  OR EXISTS (SELECT 1 FROM users_who_share_private_rooms WHERE user_id = ?1 AND other_user_id = t.user_id))"
                    .to_owned()
            };
            if !dir.show_locked_users {
                visible.push_str(" AND (u.locked IS NULL OR u.locked = FALSE)");
            }
            let sql = format!(
                "SELECT d.user_id, d.display_name, d.avatar_url, matchinfo(user_directory_search) AS info
                 FROM user_directory_search AS t
                 INNER JOIN user_directory AS d USING (user_id)
                 LEFT JOIN users AS u ON t.user_id = u.name
                 WHERE {visible} AND value MATCH ?2"
            );
            let query = sqlite_query(&words);
            let local_suffix = format!(":{}", config.server_name.to_ascii_lowercase());
            let mut top = TopK::new(limit as usize + 1);
            let mut rows = sqlx::query(&sql).bind(searcher).bind(&query).fetch(pool);
            use futures::TryStreamExt;
            while let Some(r) = rows.try_next().await? {
                let hit = SearchHit {
                    user_id: r.get(0),
                    display_name: r.get(1),
                    avatar_url: r.get(2),
                };
                let info: Vec<u8> = r.get(3);
                let local = dir.prefer_local_users
                    && hit.user_id.to_ascii_lowercase().ends_with(&local_suffix);
                top.push(Ranked {
                    score: fts_rank(&info),
                    local,
                    hit,
                });
            }
            top.into_sorted()
        }
        Db::Postgres(pool) => {
            let mut visible = if dir.search_all_users {
                "user_id != $2".to_owned()
            } else {
                "(EXISTS (SELECT 1 FROM users_in_public_rooms WHERE user_id = t.user_id)
                  OR EXISTS (SELECT 1 FROM users_who_share_private_rooms WHERE user_id = $2 AND other_user_id = t.user_id))"
                    .to_owned()
            };
            if !dir.show_locked_users {
                visible.push_str(" AND (u.locked IS NULL OR u.locked = FALSE)");
            }
            let prefer_local = if dir.prefer_local_users {
                "* (CASE WHEN user_id LIKE $6 THEN 2.0 ELSE 1.0 END)"
            } else {
                ""
            };
            // Weights (domain, _, display name, localpart); exact matches count 3x.
            let sql = format!(
                "WITH matching_users AS (
                   SELECT user_id, vector FROM user_directory_search WHERE vector @@ to_tsquery('simple', $1)
                   LIMIT 10000)
                 SELECT d.user_id AS user_id, display_name, avatar_url
                 FROM matching_users AS t
                 INNER JOIN user_directory AS d USING (user_id)
                 LEFT JOIN users AS u ON t.user_id = u.name
                 WHERE {visible}
                 ORDER BY
                   (CASE WHEN d.user_id IS NOT NULL THEN 4.0 ELSE 1.0 END)
                   * (CASE WHEN display_name IS NOT NULL THEN 1.2 ELSE 1.0 END)
                   * (CASE WHEN avatar_url IS NOT NULL THEN 1.2 ELSE 1.0 END)
                   * (3 * ts_rank_cd('{{0.1, 0.1, 0.9, 1.0}}', vector, to_tsquery('simple', $3), 8)
                      + ts_rank_cd('{{0.1, 0.1, 0.9, 1.0}}', vector, to_tsquery('simple', $4), 8))
                   {prefer_local} DESC,
                   display_name IS NULL,
                   avatar_url IS NULL
                 LIMIT $5"
            );
            let (both, exact, prefix) = pg_queries(&words);
            let mut q = sqlx::query(&sql)
                .bind(both)
                .bind(searcher)
                .bind(exact)
                .bind(prefix)
                .bind(limit as i64 + 1);
            if dir.prefer_local_users {
                q = q.bind(format!("%:{}", config.server_name));
            }
            q.fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| SearchHit {
                    user_id: r.get(0),
                    display_name: r.get(1),
                    avatar_url: r.get(2),
                })
                .collect()
        }
    };
    let limited = hits.len() as u64 > limit;
    hits.truncate(limit as usize);
    Ok(SearchResponse {
        limited,
        results: hits,
    })
}

/// SQLite FTS4 query: every word as a prefix or exactly (the exact phrase
/// adds to the rank).
pub fn sqlite_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("({w}* OR {w})"))
        .collect::<Vec<_>>()
        .join(" & ")
}

/// PostgreSQL tsqueries (prefix-or-exact, exact, prefix) over the first ten
/// words, each quoted for tsquery.
pub fn pg_queries(words: &[String]) -> (String, String, String) {
    let quoted: Vec<String> = words
        .iter()
        .take(MAX_PG_WORDS)
        .map(|w| format!("'{}'", w.replace('\'', "''").replace('\\', "\\\\")))
        .collect();
    let join = |f: &dyn Fn(&String) -> String| quoted.iter().map(f).collect::<Vec<_>>().join(" & ");
    (
        join(&|w| format!("({w}:* | {w})")),
        join(&|w| w.clone()),
        join(&|w| format!("{w}:*")),
    )
}

/// Synapse's SQLite rank over `matchinfo` ('pcx'): the sum over phrases and
/// columns of hits-in-this-row / hits-in-all-rows.
pub fn fts_rank(info: &[u8]) -> f64 {
    let ints: Vec<u32> = info
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (Some(&p), Some(&c)) = (ints.first(), ints.get(1)) else {
        return 0.0;
    };
    let mut score = 0.0;
    for phrase in 0..p as usize {
        for col in 0..c as usize {
            let i = 2 + (phrase * c as usize + col) * 3;
            if let (Some(&x1), Some(&x2)) = (ints.get(i), ints.get(i + 1)) {
                if x1 > 0 {
                    score += x1 as f64 / x2 as f64;
                }
            }
        }
    }
    score
}

struct Ranked {
    score: f64,
    local: bool,
    hit: SearchHit,
}

impl Ranked {
    /// SQLite's ORDER BY: rank DESC, [local first], with a display name
    /// first, with an avatar first.
    fn cmp(&self, other: &Ranked) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(other.local.cmp(&self.local))
            .then(
                self.hit
                    .display_name
                    .is_none()
                    .cmp(&other.hit.display_name.is_none()),
            )
            .then(
                self.hit
                    .avatar_url
                    .is_none()
                    .cmp(&other.hit.avatar_url.is_none()),
            )
    }
}

/// The best `k` rows of a stream, in bounded memory (ties keep stream order).
struct TopK {
    k: usize,
    rows: Vec<Ranked>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, r: Ranked) {
        self.rows.push(r);
        if self.rows.len() >= self.k.max(1) * 4 {
            self.shrink();
        }
    }

    fn shrink(&mut self) {
        self.rows.sort_by(Ranked::cmp);
        self.rows.truncate(self.k);
    }

    fn into_sorted(mut self) -> Vec<SearchHit> {
        self.shrink();
        self.rows.into_iter().map(|r| r.hit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_per_engine() {
        let w: Vec<String> = vec!["ali".into(), "o'k".into()];
        assert_eq!(sqlite_query(&w), "(ali* OR ali) & (o'k* OR o'k)");
        let (both, exact, prefix) = pg_queries(&w);
        assert_eq!(both, "('ali':* | 'ali') & ('o''k':* | 'o''k')");
        assert_eq!(exact, "'ali' & 'o''k'");
        assert_eq!(prefix, "'ali':* & 'o''k':*");
        let many: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
        assert_eq!(pg_queries(&many).1.matches('&').count(), 9);
    }

    #[test]
    fn rank_sums_phrase_hits() {
        // p=2 phrases, c=1 column: phrase 0 hits 1 of 2, phrase 1 hits 0.
        let ints: [u32; 8] = [2, 1, 1, 2, 2, 0, 3, 1];
        let bytes: Vec<u8> = ints.iter().flat_map(|i| i.to_ne_bytes()).collect();
        assert_eq!(fts_rank(&bytes), 0.5);
    }
}
