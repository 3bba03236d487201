//! Who made an admin change, for the audit trail: every write of the service layer records
//! one event naming its actor, whether it came from the command line, `latchkey apply` or a
//! client of the admin API (issue 13 item 1: "every write is audited with the acting client").

use serde_json::{json, Map, Value};

use crate::audit::{self, AuditEvent, Origin};
use crate::store::AuditStore;

#[derive(Clone, Debug)]
pub enum Actor {
    /// `latchkey client …`, `latchkey user …`, `latchkey keys …` at a shell.
    Cli,
    /// `latchkey apply FILE`.
    Apply,
    /// A client of the admin API, with where its request came from.
    Api { client_id: String, origin: Origin },
}

impl Actor {
    pub fn api(client_id: &str, origin: Origin) -> Self {
        Self::Api { client_id: client_id.to_string(), origin }
    }

    /// `by` in the event's detail: `cli`, `apply` or `admin_api`.
    pub fn by(&self) -> &'static str {
        match self {
            Actor::Cli => "cli",
            Actor::Apply => "apply",
            Actor::Api { .. } => "admin_api",
        }
    }

    fn origin(&self) -> Origin {
        match self {
            Actor::Api { origin, .. } => origin.clone(),
            _ => Origin::default(),
        }
    }

    /// The detail of an event this actor caused: `by`, the acting client for the API, and
    /// what the operation adds (an object; anything else is kept under `detail`).
    fn detail(&self, extra: Value) -> Value {
        let mut map = match extra {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                let mut map = Map::new();
                map.insert("detail".into(), other);
                map
            }
        };
        map.insert("by".into(), json!(self.by()));
        if let Actor::Api { client_id, .. } = self {
            map.insert("actor_client_id".into(), json!(client_id));
        }
        Value::Object(map)
    }
}

/// What an event is about: a client, a user or neither (the signing keys).
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    Client(&'a str),
    User(&'a str),
    None,
}

/// Records one admin event.
pub async fn record<S: AuditStore>(store: &S, actor: &Actor, kind: &str, subject: Subject<'_>, extra: Value, now: i64) {
    let mut event = AuditEvent::new(kind, now, &actor.origin());
    match subject {
        Subject::Client(id) => event = event.client(id),
        Subject::User(sub) => event = event.user(sub),
        Subject::None => {}
    }
    audit::record(store, event.detail(actor.detail(extra))).await;
}
