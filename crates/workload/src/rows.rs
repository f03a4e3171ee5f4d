//! Rows on their way to the database, table by table, in an order that
//! satisfies foreign keys and the event_stream_ordering triggers.

/// One column value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::Bool(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_owned())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map(Into::into).unwrap_or(Val::Null)
    }
}

/// The tables the generator writes, in insertion order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Users,
    Profiles,
    AccessTokens,
    Rooms,
    Events,
    EventJson,
    StateEvents,
    CurrentStateEvents,
    RoomMemberships,
    LocalCurrentMembership,
    CurrentStateDeltaStream,
}

impl Table {
    pub const ALL: [Table; 11] = [
        Table::Users,
        Table::Profiles,
        Table::AccessTokens,
        Table::Rooms,
        Table::Events,
        Table::EventJson,
        Table::StateEvents,
        Table::CurrentStateEvents,
        Table::RoomMemberships,
        Table::LocalCurrentMembership,
        Table::CurrentStateDeltaStream,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Profiles => "profiles",
            Table::AccessTokens => "access_tokens",
            Table::Rooms => "rooms",
            Table::Events => "events",
            Table::EventJson => "event_json",
            Table::StateEvents => "state_events",
            Table::CurrentStateEvents => "current_state_events",
            Table::RoomMemberships => "room_memberships",
            Table::LocalCurrentMembership => "local_current_membership",
            Table::CurrentStateDeltaStream => "current_state_delta_stream",
        }
    }

    /// The columns we fill (the others keep their defaults or NULL).
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Users => &[
                "name",
                "password_hash",
                "creation_ts",
                "admin",
                "is_guest",
                "appservice_id",
                "user_type",
                "deactivated",
                "shadow_banned",
                "approved",
                "locked",
                "suspended",
            ],
            Table::Profiles => &["user_id", "displayname", "avatar_url", "full_user_id"],
            Table::AccessTokens => &["id", "user_id", "device_id", "token"],
            Table::Rooms => &[
                "room_id",
                "is_public",
                "creator",
                "room_version",
                "has_auth_chain_index",
            ],
            Table::Events => &[
                "stream_ordering",
                "topological_ordering",
                "event_id",
                "type",
                "room_id",
                "content",
                "processed",
                "outlier",
                "depth",
                "origin_server_ts",
                "received_ts",
                "sender",
                "contains_url",
                "instance_name",
                "state_key",
            ],
            Table::EventJson => &[
                "event_id",
                "room_id",
                "internal_metadata",
                "json",
                "format_version",
            ],
            Table::StateEvents => &["event_id", "room_id", "type", "state_key"],
            Table::CurrentStateEvents => &[
                "event_id",
                "room_id",
                "type",
                "state_key",
                "membership",
                "event_stream_ordering",
            ],
            Table::RoomMemberships => &[
                "event_id",
                "user_id",
                "sender",
                "room_id",
                "membership",
                "display_name",
                "avatar_url",
                "event_stream_ordering",
            ],
            Table::LocalCurrentMembership => &[
                "room_id",
                "user_id",
                "event_id",
                "membership",
                "event_stream_ordering",
            ],
            Table::CurrentStateDeltaStream => &[
                "stream_id",
                "room_id",
                "type",
                "state_key",
                "event_id",
                "prev_event_id",
                "instance_name",
            ],
        }
    }
}

/// Rows for several tables, written together in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    rows: [Vec<Vec<Val>>; 11],
}

impl Batch {
    pub fn push(&mut self, table: Table, row: Vec<Val>) {
        debug_assert_eq!(row.len(), table.columns().len(), "{}", table.name());
        self.rows[table as usize].push(row);
    }

    pub fn rows(&self, table: Table) -> &[Vec<Val>] {
        &self.rows[table as usize]
    }

    /// Total rows over all tables.
    pub fn len(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
