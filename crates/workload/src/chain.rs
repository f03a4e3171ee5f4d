//! One room's event chain and current state, and the rows a homeserver writes
//! when it persists an event there. Seeding builds chains from nothing;
//! drift loads the chain of an existing room and appends to it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::error::WorkloadError;
use crate::event::{Pdu, Signer};
use crate::rows::{Batch, Table, Val};

/// Where the next event goes in the database: stream position and clock.
pub struct Appender<'a> {
    pub signer: &'a Signer,
    /// The local server: members of it get `local_current_membership` rows.
    pub server_name: &'a str,
    pub next_stream: i64,
    /// origin_server_ts of the next event; advanced per event.
    pub now_ms: i64,
}

/// A current state entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Current {
    pub event_id: String,
    pub stream_ordering: i64,
    pub membership: Option<String>,
}

pub type StateKey = (String, String);

/// A room: linear chain (prev_events = the last event) and current state.
#[derive(Clone, Debug, Default)]
pub struct RoomChain {
    pub room_id: String,
    pub depth: i64,
    pub last_event: Option<String>,
    pub state: BTreeMap<StateKey, Current>,
    /// State keys whose current state changed since the chain was created or loaded.
    pub changed: BTreeSet<StateKey>,
}

/// Synapse's rule for `room_memberships.display_name` / `avatar_url`:
/// a string without U+0000, else NULL.
pub fn clean_str(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.contains('\0') => Some(s.clone()),
        _ => None,
    }
}

/// Whether a user id belongs to `server_name` (exact comparison of the part after the first ':').
pub fn is_local(user_id: &str, server_name: &str) -> bool {
    user_id.split_once(':').map(|(_, s)| s) == Some(server_name)
}

impl RoomChain {
    pub fn new(room_id: String) -> RoomChain {
        RoomChain {
            room_id,
            ..RoomChain::default()
        }
    }

    pub fn current(&self, kind: &str, state_key: &str) -> Option<&Current> {
        self.state.get(&(kind.to_owned(), state_key.to_owned()))
    }

    /// The membership of a user, if they have a member event.
    pub fn membership(&self, user_id: &str) -> Option<&str> {
        self.current("m.room.member", user_id)
            .and_then(|c| c.membership.as_deref())
    }

    /// Room version 10 auth events: create, power levels, the sender's
    /// membership, and for member events the target's membership and the
    /// join rules.
    fn auth_events(
        &self,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: &Value,
    ) -> Vec<String> {
        if kind == "m.room.create" {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        let mut add = |c: Option<&Current>| {
            if let Some(c) = c {
                if !out.contains(&c.event_id) {
                    out.push(c.event_id.clone());
                }
            }
        };
        add(self.current("m.room.create", ""));
        add(self.current("m.room.power_levels", ""));
        add(self.current("m.room.member", sender));
        if kind == "m.room.member" {
            if let Some(target) = state_key {
                add(self.current("m.room.member", target));
            }
            let m = content.get("membership").and_then(Value::as_str);
            if matches!(m, Some("join" | "invite" | "knock")) {
                add(self.current("m.room.join_rules", ""));
            }
        }
        out
    }

    /// Persists one event the way a homeserver does: `events`, `event_json`,
    /// and for state `state_events` and `current_state_delta_stream`; member
    /// events also get `room_memberships`. Current state is kept in memory
    /// (see [`RoomChain::current_state_rows`]). Returns the event id.
    pub fn append(
        &mut self,
        ap: &mut Appender<'_>,
        batch: &mut Batch,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Result<String, WorkloadError> {
        let depth = self.depth + 1;
        let stream = ap.next_stream;
        let ts = ap.now_ms;
        let pdu = Pdu {
            room_id: &self.room_id,
            sender,
            kind,
            state_key,
            content: &content,
            auth_events: self.auth_events(sender, kind, state_key, &content),
            prev_events: self.last_event.iter().cloned().collect(),
            depth,
            origin_server_ts: ts,
        };
        let built = ap.signer.build(&pdu)?;
        let id = built.event_id;
        ap.next_stream += 1;
        // Events arrive a few seconds apart; received a moment after they were sent.
        ap.now_ms += 500 + (stream.unsigned_abs() * 7919 % 4500) as i64;
        let contains_url = matches!(content.get("url"), Some(Value::String(_)));
        batch.push(
            Table::Events,
            vec![
                stream.into(),
                depth.into(),
                id.as_str().into(),
                kind.into(),
                self.room_id.as_str().into(),
                content.to_string().into(),
                true.into(),
                false.into(),
                depth.into(),
                ts.into(),
                (ts + (stream % 97)).into(),
                sender.into(),
                contains_url.into(),
                "master".into(),
                state_key.into(),
            ],
        );
        batch.push(
            Table::EventJson,
            vec![
                id.as_str().into(),
                self.room_id.as_str().into(),
                "{}".into(),
                built.json.into(),
                Val::Int(3),
            ],
        );
        if let Some(sk) = state_key {
            batch.push(
                Table::StateEvents,
                vec![
                    id.as_str().into(),
                    self.room_id.as_str().into(),
                    kind.into(),
                    sk.into(),
                ],
            );
            let key = (kind.to_owned(), sk.to_owned());
            let prev = self.state.get(&key).map(|c| c.event_id.clone());
            batch.push(
                Table::CurrentStateDeltaStream,
                vec![
                    stream.into(),
                    self.room_id.as_str().into(),
                    kind.into(),
                    sk.into(),
                    id.as_str().into(),
                    prev.into(),
                    "master".into(),
                ],
            );
            let membership = if kind == "m.room.member" {
                let m = content
                    .get("membership")
                    .and_then(Value::as_str)
                    .ok_or_else(|| WorkloadError::Event("member event without membership".into()))?
                    .to_owned();
                batch.push(
                    Table::RoomMemberships,
                    vec![
                        id.as_str().into(),
                        sk.into(),
                        sender.into(),
                        self.room_id.as_str().into(),
                        m.as_str().into(),
                        clean_str(content.get("displayname")).into(),
                        clean_str(content.get("avatar_url")).into(),
                        stream.into(),
                    ],
                );
                Some(m)
            } else {
                None
            };
            self.state.insert(
                key.clone(),
                Current {
                    event_id: id.clone(),
                    stream_ordering: stream,
                    membership,
                },
            );
            self.changed.insert(key);
        }
        self.depth = depth;
        self.last_event = Some(id.clone());
        Ok(id)
    }

    /// `current_state_events` rows for the given keys, and
    /// `local_current_membership` rows for local members among them.
    pub fn current_state_rows<'k>(
        &self,
        batch: &mut Batch,
        server_name: &str,
        keys: impl IntoIterator<Item = &'k StateKey>,
    ) {
        for key in keys {
            let Some(c) = self.state.get(key) else {
                continue;
            };
            let (kind, sk) = key;
            batch.push(
                Table::CurrentStateEvents,
                vec![
                    c.event_id.as_str().into(),
                    self.room_id.as_str().into(),
                    kind.as_str().into(),
                    sk.as_str().into(),
                    c.membership.clone().into(),
                    c.stream_ordering.into(),
                ],
            );
            if kind == "m.room.member" && is_local(sk, server_name) {
                if let Some(m) = &c.membership {
                    batch.push(
                        Table::LocalCurrentMembership,
                        vec![
                            self.room_id.as_str().into(),
                            sk.as_str().into(),
                            c.event_id.as_str().into(),
                            m.as_str().into(),
                            c.stream_ordering.into(),
                        ],
                    );
                }
            }
        }
    }
}
