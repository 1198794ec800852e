//! Objects as stored and as served: the store keeps JSON without `resourceVersion` (the
//! revision is only known once the write is ordered), and every read puts it back.

use serde_json::Map;
use serde_json::Value;
use skiff_api_types::convert;
use skiff_api_types::registry::Resource;
use skiff_store::Record;

use crate::error::ApiError;

/// The object of a stored record as resource `r` serves it (converted when `r` is another
/// version of what is stored), with `metadata.resourceVersion` set.
pub fn read(r: &Resource, record: &Record) -> Result<Value, ApiError> {
    Ok(convert::from_stored(r, from_record(record)?))
}

/// The served JSON of a stored record for resource `r`: spliced from the stored bytes when no
/// conversion is needed.
pub fn read_json(r: &Resource, record: &Record) -> Result<Vec<u8>, ApiError> {
    if r.stored_as.is_none() {
        return record_json(record);
    }
    serde_json::to_vec(&read(r, record)?).map_err(|e| ApiError::Internal(format!("cannot encode object: {e}")))
}

/// The bytes to store for `obj`, served as resource `r`.
pub fn write_bytes(r: &Resource, obj: &Value) -> Result<Vec<u8>, ApiError> {
    if r.stored_as.is_none() {
        return to_bytes(obj);
    }
    to_bytes(&convert::to_stored(r, obj.clone()))
}

/// The object of a stored record, with `metadata.resourceVersion` set from the record.
pub fn from_record(record: &Record) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&record.value)
        .map_err(|e| ApiError::Internal(format!("stored object {} is not JSON: {e}", record.key)))?;
    set_meta(&mut obj, "resourceVersion", Value::String(record.revision.to_string()));
    Ok(obj)
}

/// The served JSON of a stored record without parsing it: `resourceVersion` is spliced into
/// the stored bytes. Stored objects are written with sorted keys, so the object's own
/// `"metadata":{` comes right after `apiVersion` and `kind`; anything else is parsed.
pub fn record_json(record: &Record) -> Result<Vec<u8>, ApiError> {
    const META: &[u8] = b"\"metadata\":{";
    let head = &record.value[..record.value.len().min(256)];
    let top_level = head.starts_with(b"{\"apiVersion\":");
    if let (true, Some(at)) = (top_level, head.windows(META.len()).position(|w| w == META)) {
        let insert = at + META.len();
        let rv = format!("\"resourceVersion\":\"{}\"", record.revision);
        let empty = record.value.get(insert) == Some(&b'}');
        let mut out = Vec::with_capacity(record.value.len() + rv.len() + 1);
        out.extend_from_slice(&record.value[..insert]);
        out.extend_from_slice(rv.as_bytes());
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(&record.value[insert..]);
        return Ok(out);
    }
    serde_json::to_vec(&from_record(record)?).map_err(|e| ApiError::Internal(format!("cannot encode object: {e}")))
}

/// The bytes to store for `obj` (without `resourceVersion`, which the store's revision supplies).
pub fn to_bytes(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let encode =
        |obj: &Value| serde_json::to_vec(obj).map_err(|e| ApiError::Internal(format!("cannot encode object: {e}")));
    if meta(obj).is_some_and(|m| m.contains_key("resourceVersion")) {
        let mut obj = obj.clone();
        remove_meta(&mut obj, "resourceVersion");
        return encode(&obj);
    }
    encode(obj)
}

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// The object's `metadata`, created if missing (or replaced if it was not a map).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else { unreachable!("made an object above") };
    let m = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    match m {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    meta_mut(obj).insert(field.to_string(), value);
}

pub fn remove_meta(obj: &mut Value, field: &str) {
    meta_mut(obj).remove(field);
}

pub fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// The `resourceVersion` a client sent, parsed; `Ok(None)` when absent or empty.
pub fn resource_version(obj: &Value) -> Result<Option<u64>, ApiError> {
    match meta_str(obj, "resourceVersion") {
        None => Ok(None),
        Some(rv) => parse_rv(rv).map(Some),
    }
}

pub fn parse_rv(rv: &str) -> Result<u64, ApiError> {
    rv.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))
}

/// The current time as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    let ts = jiff::Timestamp::now();
    format!("{}", ts.strftime("%Y-%m-%dT%H:%M:%SZ"))
}

/// Everything of `obj` except `metadata` and `status`, to decide whether the generation moves.
pub fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// A random suffix for `generateName`, from the alphabet upstream uses (no vowels, no look-alikes).
pub fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn resource_version_comes_from_the_record() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}});
        let bytes = to_bytes(&obj).expect("encodes");
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let rec = Record { key: "k".into(), value: bytes.into(), revision: 42, create_revision: 40, uid: "u".into() };
        assert_eq!(from_record(&rec).expect("decodes")["metadata"]["resourceVersion"], "42");
        assert!(parse_rv("x").is_err());
        let spliced: Value = serde_json::from_slice(&record_json(&rec).expect("splices")).expect("valid JSON");
        assert_eq!(spliced, from_record(&rec).expect("decodes"));
        let empty = Record {
            value: bytes::Bytes::from_static(br#"{"apiVersion":"v1","kind":"X","metadata":{}}"#),
            ..rec.clone()
        };
        let spliced: Value = serde_json::from_slice(&record_json(&empty).expect("splices")).expect("valid JSON");
        assert_eq!(spliced["metadata"]["resourceVersion"], "42");
        let odd =
            Record { value: bytes::Bytes::from_static(br#"{"a":{"metadata":{}},"metadata":{"name":"n"}}"#), ..rec };
        let parsed: Value = serde_json::from_slice(&record_json(&odd).expect("falls back")).expect("valid JSON");
        assert_eq!(parsed["metadata"]["resourceVersion"], "42");
        assert!(parsed["a"]["metadata"].get("resourceVersion").is_none());
        let mut weird = json!("not an object");
        set_meta(&mut weird, "name", "n".into());
        assert_eq!(name_of(&weird), "n");
        assert_eq!(random_suffix().len(), 5);
    }
}
