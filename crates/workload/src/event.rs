//! Room version 10 PDUs as a homeserver builds them: content hash, an ed25519
//! signature, and an event id that is the reference hash of the redacted
//! canonical JSON (Synapse refuses to load an event that does not hash to its id).

use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::{self, Ed25519KeyPair};
use ruma::{CanonicalJsonObject, CanonicalJsonValue};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::WorkloadError;

/// The key id our signatures carry (`ed25519:a_upd`).
pub const KEY_VERSION: &str = "a_upd";

/// Signs events with a deterministic ed25519 key derived from the seed.
pub struct Signer {
    key: Ed25519KeyPair,
}

/// A finished event: its id and the JSON stored in `event_json.json`.
#[derive(Clone, Debug)]
pub struct Built {
    pub event_id: String,
    pub json: String,
}

/// The parts of a PDU the caller decides; the rest is computed.
pub struct Pdu<'a> {
    pub room_id: &'a str,
    pub sender: &'a str,
    pub kind: &'a str,
    pub state_key: Option<&'a str>,
    pub content: &'a Value,
    pub auth_events: Vec<String>,
    pub prev_events: Vec<String>,
    pub depth: i64,
    pub origin_server_ts: i64,
}

impl Signer {
    pub fn from_seed(seed: u64) -> Signer {
        let secret: [u8; 32] = Sha256::digest(format!("updraft signing key {seed}")).into();
        // A PKCS#8 v1 document for an ed25519 private key is a fixed prefix and the 32 secret bytes.
        let mut der = hex_prefix();
        der.extend_from_slice(&secret);
        let key = Ed25519KeyPair::from_der(&der, KEY_VERSION.to_owned())
            .expect("a 32-byte ed25519 secret always forms a key");
        Signer { key }
    }

    /// Hashes, signs (as the sender's server) and names the event.
    pub fn build(&self, pdu: &Pdu<'_>) -> Result<Built, WorkloadError> {
        let ids = |v: &[String]| {
            CanonicalJsonValue::Array(
                v.iter()
                    .map(|s| CanonicalJsonValue::String(s.clone()))
                    .collect(),
            )
        };
        let content = CanonicalJsonValue::try_from(pdu.content.clone())
            .map_err(|e| WorkloadError::Event(format!("content is not canonical JSON: {e}")))?;
        let mut obj = CanonicalJsonObject::new();
        obj.insert("auth_events".into(), ids(&pdu.auth_events));
        obj.insert("content".into(), content);
        obj.insert("depth".into(), int(pdu.depth));
        obj.insert("origin_server_ts".into(), int(pdu.origin_server_ts));
        obj.insert("prev_events".into(), ids(&pdu.prev_events));
        obj.insert("room_id".into(), pdu.room_id.into());
        obj.insert("sender".into(), pdu.sender.into());
        if let Some(sk) = pdu.state_key {
            obj.insert("state_key".into(), sk.into());
        }
        obj.insert("type".into(), pdu.kind.into());
        let server = pdu.sender.split_once(':').map(|(_, s)| s).unwrap_or("");
        let rules = RoomVersionRules::V10;
        signatures::hash_and_sign_event(server, &self.key, &mut obj, &rules.redaction)
            .map_err(|e| WorkloadError::Event(format!("signing: {e}")))?;
        let event_id = event_id_of(&obj)?;
        let json = serde_json::to_string(&obj)
            .map_err(|e| WorkloadError::Event(format!("serialising: {e}")))?;
        Ok(Built { event_id, json })
    }
}

/// The room-version-10 event id of a PDU (`$` + reference hash).
pub fn event_id_of(obj: &CanonicalJsonObject) -> Result<String, WorkloadError> {
    let hash = signatures::reference_hash(obj, &RoomVersionRules::V10)
        .map_err(|e| WorkloadError::Event(format!("reference hash: {e}")))?;
    Ok(format!("${hash}"))
}

/// Parses stored event JSON and recomputes its id (used by tests and checks).
pub fn event_id_of_json(json: &str) -> Result<String, WorkloadError> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| WorkloadError::Event(format!("bad JSON: {e}")))?;
    let CanonicalJsonValue::Object(obj) = CanonicalJsonValue::try_from(value)
        .map_err(|e| WorkloadError::Event(format!("not canonical JSON: {e}")))?
    else {
        return Err(WorkloadError::Event("event JSON is not an object".into()));
    };
    event_id_of(&obj)
}

fn int(v: i64) -> CanonicalJsonValue {
    CanonicalJsonValue::Integer(ruma::Int::new(v).unwrap_or(ruma::Int::MAX))
}

fn hex_prefix() -> Vec<u8> {
    vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_reference_hashes_and_signatures_verify() {
        let signer = Signer::from_seed(1);
        let content = serde_json::json!({"membership": "join", "displayname": "A\u{0}b"});
        let pdu = Pdu {
            room_id: "!r:example.org",
            sender: "@a:example.org",
            kind: "m.room.member",
            state_key: Some("@a:example.org"),
            content: &content,
            auth_events: vec!["$x".into()],
            prev_events: vec!["$y".into()],
            depth: 3,
            origin_server_ts: 1_600_000_000_000,
        };
        let built = signer.build(&pdu).unwrap();
        assert_eq!(built.event_id, event_id_of_json(&built.json).unwrap());
        assert_eq!(built.event_id.len(), 44, "{}", built.event_id);
        assert!(!built.event_id.contains(['+', '/', '=']));
        // Same input, same id; other content, other id.
        assert_eq!(signer.build(&pdu).unwrap().event_id, built.event_id);
        let other = serde_json::json!({"membership": "leave"});
        assert_ne!(
            signer
                .build(&Pdu {
                    content: &other,
                    ..pdu
                })
                .unwrap()
                .event_id,
            built.event_id
        );
        // The signature verifies with the public key.
        let value: Value = serde_json::from_str(&built.json).unwrap();
        let CanonicalJsonValue::Object(obj) = CanonicalJsonValue::try_from(value).unwrap() else {
            panic!()
        };
        let mut keys = std::collections::BTreeMap::new();
        keys.insert(
            format!("ed25519:{KEY_VERSION}"),
            ruma::serde::Base64::new(signer.key.public_key().to_vec()),
        );
        let mut map = signatures::PublicKeyMap::new();
        map.insert("example.org".into(), keys);
        signatures::verify_event(&map, &obj, &RoomVersionRules::V10).unwrap();
    }
}
