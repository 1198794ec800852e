//! Conversion between versions that share storage (`Resource::stored_as`).
//!
//! The only such pair today is events.k8s.io/v1 Event, stored as a core/v1 Event. The two differ
//! in field names only, so conversion is a rename of top-level fields plus `apiVersion`.

use serde_json::Map;
use serde_json::Value;

use crate::registry::api_version;
use crate::registry::Resource;

/// events.k8s.io/v1 field → core/v1 field. Fields with the same name in both (`reason`, `type`,
/// `action`, `related`, `reportingInstance`, `eventTime`, `series`, `metadata`) are not listed.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn renames(r: &Resource) -> &'static [(&'static str, &'static str)] {
    match (r.group, r.kind) {
        ("events.k8s.io", "Event") => EVENT_FIELDS,
        _ => &[],
    }
}

/// `obj`, in `r`'s form, converted to the form it is stored in. Unchanged for resources stored as
/// themselves.
pub fn to_stored(r: &Resource, obj: Value) -> Value {
    let Some(stored) = r.stored_as else { return obj };
    let pairs: Vec<(&str, &str)> = renames(r).iter().map(|&(view, stored)| (view, stored)).collect();
    rename(obj, &pairs, &api_version(stored.group, stored.version))
}

/// A stored object converted to `r`'s form. Unchanged for resources stored as themselves.
pub fn from_stored(r: &Resource, obj: Value) -> Value {
    if r.stored_as.is_none() {
        return obj;
    }
    let pairs: Vec<(&str, &str)> = renames(r).iter().map(|&(view, stored)| (stored, view)).collect();
    rename(obj, &pairs, &r.api_version())
}

fn rename(obj: Value, pairs: &[(&str, &str)], to_version: &str) -> Value {
    let Value::Object(fields) = obj else { return obj };
    let mut out = Map::new();
    for (name, value) in fields {
        let renamed = pairs.iter().find(|(from, _)| *from == name).map(|(_, to)| to.to_string());
        out.insert(renamed.unwrap_or(name), value);
    }
    out.insert("apiVersion".into(), Value::String(to_version.to_string()));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::find;

    #[test]
    fn events_round_trip_between_the_two_groups() {
        let new_events = find("events.k8s.io", "v1", "events").expect("served");
        let core_events = find("", "v1", "events").expect("served");
        let sent = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "pulled", "reason": "Pulled",
            "reportingController": "skiff/agent", "reportingInstance": "n1", "action": "Pull",
            "eventTime": "2026-01-01T00:00:00.000000Z", "deprecatedCount": 3, "type": "Normal"});
        let stored = to_stored(new_events, sent.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "pulled");
        assert_eq!(stored["reportingComponent"], "skiff/agent");
        assert_eq!(stored["count"], 3);
        assert_eq!(stored["reason"], "Pulled");
        assert!(stored.get("regarding").is_none() && stored.get("note").is_none());
        assert_eq!(from_stored(new_events, stored.clone()), sent);
        // The core group reads the stored form as it is.
        assert_eq!(from_stored(core_events, stored.clone()), stored);
        assert_eq!(to_stored(core_events, stored.clone()), stored);
        assert_eq!(new_events.key_prefix(), core_events.key_prefix());
    }
}
