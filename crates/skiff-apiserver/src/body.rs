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
    decode_object_noting_duplicates(headers, bytes).map(|(obj, _)| obj)
}

/// [`decode_object`], with the paths of keys a JSON body repeats inside one object
/// (`fieldValidation` reports them; the later value is the one kept, as upstream keeps it).
pub fn decode_object_noting_duplicates(headers: &HeaderMap, bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    match media_type(headers).as_str() {
        "application/json" => parse_json_noting_duplicates(bytes),
        "application/yaml" => parse_yaml(bytes).map(|v| (v, Vec::new())),
        "application/vnd.kubernetes.protobuf" => {
            skiff_api_types::protobuf::decode(bytes).map(|v| (v, Vec::new())).map_err(|e| match e {
                skiff_api_types::protobuf::ProtobufError::UnsupportedKind { .. } => {
                    ApiError::UnsupportedMediaType { accepted: "application/json, application/yaml".into() }
                }
                other => ApiError::BadRequest(format!("cannot decode the protobuf body: {other}")),
            })
        }
        _ => Err(ApiError::UnsupportedMediaType { accepted: OBJECT_TYPES.into() }),
    }
}

pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    parse_json_noting_duplicates(bytes).map(|(v, _)| v)
}

/// Parses JSON into a value and notes repeated keys in the same pass: a second walk over the
/// body just for duplicates was a percent of the server's CPU under creates.
pub fn parse_json_noting_duplicates(bytes: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    let bad = |e: serde_json::Error| ApiError::BadRequest(format!("the body is not valid JSON: {e}"));
    let mut duplicates = Vec::new();
    let mut path = String::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value =
        serde::de::DeserializeSeed::deserialize(Noting { path: &mut path, duplicates: &mut duplicates }, &mut de)
            .map_err(bad)?;
    de.end().map_err(bad)?;
    Ok((value, duplicates))
}

pub fn parse_yaml(bytes: &[u8]) -> Result<Value, ApiError> {
    // JSON is YAML, and serde_json's errors are clearer for it.
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return Ok(v);
    }
    serde_yaml::from_slice::<Value>(bytes).map_err(|e| ApiError::BadRequest(format!("the body is not valid YAML: {e}")))
}

/// Builds a JSON value as serde_json's own does, noting the path of every repeated key. The
/// path buffer is shared by the whole walk, so noting costs nothing while no key repeats.
struct Noting<'a> {
    path: &'a mut String,
    duplicates: &'a mut Vec<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Noting<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Noting<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        let base = self.path.len();
        while let Some(key) = map.next_key::<String>()? {
            if base > 0 {
                self.path.push('.');
            }
            self.path.push_str(&key);
            let value = map.next_value_seed(Noting { path: &mut *self.path, duplicates: &mut *self.duplicates })?;
            if out.insert(key, value).is_some() {
                self.duplicates.push(self.path.clone());
            }
            self.path.truncate(base);
        }
        Ok(Value::Object(out))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let base = self.path.len();
        loop {
            let mut index = itoa::Buffer::new();
            self.path.push('[');
            self.path.push_str(index.format(out.len()));
            self.path.push(']');
            let next = seq.next_element_seed(Noting { path: &mut *self.path, duplicates: &mut *self.duplicates })?;
            self.path.truncate(base);
            match next {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate_fields(bytes: &[u8]) -> Vec<String> {
        parse_json_noting_duplicates(bytes).expect("parses").1
    }

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
        assert!(matches!(parse_json(b"{} x"), Err(ApiError::BadRequest(_))), "trailing characters");
    }

    #[test]
    fn the_noting_parse_builds_what_serde_json_builds() {
        let bodies: [&[u8]; 6] = [
            br#"{"a":1,"b":[1,-2,3.5,1e300,null,true,"s\u00e9"],"c":{"d":{}},"e":[]}"#,
            br#"{"big":18446744073709551615,"neg":-9223372036854775808,"f":0.1}"#,
            br#"{"k":1,"k":2,"n":{"x":[{"y":1,"y":{"z":3}}]}}"#,
            br#"[1,{"a":"b"}]"#,
            br#""just a string""#,
            b" {\"ws\" : \n 1 } ",
        ];
        for body in bodies {
            let ours = parse_json(body).expect("parses");
            let theirs: Value = serde_json::from_slice(body).expect("serde_json parses");
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(parse_json(br#"{"k":1,"k":2}"#).expect("parses")["k"], 2, "the later value is kept");
    }
}
