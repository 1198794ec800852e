//! Request bodies: size limit, media types, and decoding JSON, YAML and Kubernetes protobuf
//! into one JSON value.

use axum::body::Body;
use axum::http::HeaderMap;
use http_body_util::BodyExt;
use http_body_util::Limited;
use serde_json::Value;

use crate::error::ApiError;

/// Upstream's limit on request bodies (3 MiB); larger ones get 413 without being read.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub async fn read(body: Body) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::TooLarge { limit: MAX_BODY })
        }
        Err(e) => Err(ApiError::BadRequest(format!("cannot read the request body: {e}"))),
    }
}

/// The media type of the body, without parameters; a missing header means JSON (kubectl's
/// `scale --current-replicas` sends none).
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/json".to_string())
}

const OBJECT_TYPES: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// Decodes an object body (create, update) of any supported media type.
pub fn decode_object(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    match media_type(headers).as_str() {
        "application/json" => parse_json(bytes),
        "application/yaml" => parse_yaml(bytes),
        "application/vnd.kubernetes.protobuf" => skiff_api_types::protobuf::decode(bytes).map_err(|e| match e {
            skiff_api_types::protobuf::ProtobufError::UnsupportedKind { .. } => {
                ApiError::UnsupportedMediaType { accepted: "application/json, application/yaml".into() }
            }
            other => ApiError::BadRequest(format!("cannot decode the protobuf body: {other}")),
        }),
        _ => Err(ApiError::UnsupportedMediaType { accepted: OBJECT_TYPES.into() }),
    }
}

pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

pub fn parse_yaml(bytes: &[u8]) -> Result<Value, ApiError> {
    // JSON is YAML, and serde_json's errors are clearer for it.
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return Ok(v);
    }
    serde_yaml::from_slice::<Value>(bytes).map_err(|e| ApiError::BadRequest(format!("the body is not valid YAML: {e}")))
}

/// Paths of keys that appear twice in the same JSON object (`fieldValidation` reports them).
///
/// One path buffer is shared by the whole walk and keys are borrowed from the body where they
/// have no escapes, so a body without duplicates costs no allocation per field.
pub fn duplicate_fields(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = String::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let _ = serde::de::DeserializeSeed::deserialize(DupSeed { path: &mut path, out: &mut out }, &mut de);
    out
}

struct DupSeed<'a> {
    path: &'a mut String,
    out: &'a mut Vec<String>,
}

/// An object key, borrowed from the input when it can be.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for DupSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DupSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        let base = self.path.len();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if base > 0 {
                self.path.push('.');
            }
            self.path.push_str(&key);
            if !seen.insert(key) {
                self.out.push(self.path.clone());
            }
            map.next_value_seed(DupSeed { path: &mut *self.path, out: &mut *self.out })?;
            self.path.truncate(base);
        }
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use std::fmt::Write;
        let base = self.path.len();
        let mut i = 0;
        loop {
            let _ = write!(self.path, "[{i}]");
            let more = seq.next_element_seed(DupSeed { path: &mut *self.path, out: &mut *self.out })?.is_some();
            self.path.truncate(base);
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicate_keys_with_paths() {
        let body = br#"{"metadata":{"name":"a","name":"b"},"spec":{"containers":[{"image":"x","image":"y"}]}}"#;
        assert_eq!(duplicate_fields(body), vec!["metadata.name".to_string(), "spec.containers[0].image".to_string()]);
        assert!(duplicate_fields(br#"{"a":1}"#).is_empty());
        // Escaped keys are compared by their decoded text, and paths nest through lists.
        let body = br#"{"a\u0062":1,"ab":2,"l":[{},[{"x":1,"x":2}]]}"#;
        assert_eq!(duplicate_fields(body), vec!["ab".to_string(), "l[1][0].x".to_string()]);
    }

    #[test]
    fn media_types_and_parsers() {
        let mut h = HeaderMap::new();
        assert_eq!(media_type(&h), "application/json");
        h.insert("content-type", "application/yaml; charset=utf-8".parse().expect("header"));
        assert_eq!(media_type(&h), "application/yaml");
        assert_eq!(decode_object(&h, b"a: 1\n").expect("yaml")["a"], 1);
        h.insert("content-type", "text/plain".parse().expect("header"));
        assert!(matches!(decode_object(&h, b"{}"), Err(ApiError::UnsupportedMediaType { .. })));
        assert!(matches!(parse_json(b"{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_json(b""), Err(ApiError::BadRequest(_))));
    }
}
