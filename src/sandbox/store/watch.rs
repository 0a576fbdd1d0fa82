//! Watch events: what the store announces on each change, and the recent history a watch
//! resuming from a resourceVersion replays (as the real server's watch cache does).

use serde_json::Value;
use tokio::sync::broadcast;

use super::{Inner, Store};
use crate::sandbox::resources::Resource;

/// A change to an object, as watches hear of it: `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub resource: &'static Resource,
    pub namespace: String,
    pub object: Value,
}

/// How many events a watch can resume across.
const HISTORY: usize = 4096;

impl Store {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Subscribe, with the events after resourceVersion `since` that were already sent; `None`
    /// when they are no longer held (the real server's "too old resource version").
    pub fn watch_from(&self, since: u64) -> (broadcast::Receiver<Event>, Option<Vec<Event>>) {
        let inner = self.lock();
        let rx = self.events.subscribe();
        if since < inner.history_floor {
            return (rx, None);
        }
        let rv = |e: &Event| {
            e.object["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let past = inner
            .history
            .iter()
            .filter(|e| rv(e) > since)
            .cloned()
            .collect();
        (rx, Some(past))
    }

    /// Send an event to the watches, and keep it for those that resume later.
    pub(super) fn announce(&self, inner: &mut Inner, ev: Event) {
        inner.history.push_back(ev.clone());
        if inner.history.len() > HISTORY
            && let Some(old) = inner.history.pop_front()
        {
            inner.history_floor = old.object["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(inner.history_floor);
        }
        let _ = self.events.send(ev);
    }

    /// Announce that an object was deleted, at a new resourceVersion.
    pub(super) fn removed(
        &self,
        inner: &mut Inner,
        r: &'static Resource,
        ns: &str,
        mut obj: Value,
    ) {
        inner.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::from(inner.rv.to_string());
        self.announce(
            inner,
            Event {
                kind: "DELETED",
                resource: r,
                namespace: ns.to_string(),
                object: obj,
            },
        );
    }
}
