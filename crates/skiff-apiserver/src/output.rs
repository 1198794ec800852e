//! Shaping answers: plain objects and lists, server-side Tables, partial metadata.

use axum::response::IntoResponse;
use axum::response::Response;
use serde_json::json;
use serde_json::Value;
use skiff_api_types::registry::Resource;
use skiff_api_types::table;

use crate::error::ApiError;
use crate::request::Query;
use crate::request::Shape;

pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// What a Table row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        match q.get("includeObject") {
            None | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(ApiError::BadRequest(format!(
                "includeObject must be one of \"None\", \"Metadata\" or \"Object\", not {other:?}"
            ))),
        }
    }
}

pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))})
}

/// The columns of a resource, as the Table's `columnDefinitions`.
pub fn column_definitions(r: &Resource) -> Value {
    serde_json::to_value(table::columns(r.group, r.plural)).unwrap_or_else(|_| json!([]))
}

pub fn table_row(r: &Resource, obj: &Value, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let mut row = json!({"cells": table::cells(r.group, r.plural, obj, now)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = partial_metadata(obj),
        IncludeObject::Object => row["object"] = obj.clone(),
    }
    row
}

/// A Table of `objects`, with list metadata (`resourceVersion`, `continue`).
pub fn table(r: &Resource, objects: &[Value], list_meta: Value, include: IncludeObject) -> Value {
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects.iter().map(|o| table_row(r, o, include, now)).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": column_definitions(r), "rows": rows})
}

pub fn json_with(code: axum::http::StatusCode, content_type: &'static str, body: &Value) -> Response {
    // `to_vec` writes straight into a buffer; `Display` would go through the formatter.
    match serde_json::to_vec(body) {
        Ok(bytes) => (code, [("content-type", content_type)], bytes).into_response(),
        Err(e) => ApiError::Internal(format!("cannot encode the answer: {e}")).into_response(),
    }
}

/// One object (get, create, update...) in the shape the client asked for.
pub fn object(
    r: &Resource,
    obj: &Value,
    shape: Shape,
    q: &Query,
    code: axum::http::StatusCode,
    warnings: &[String],
) -> Result<Response, ApiError> {
    let mut resp = match shape {
        Shape::Table => {
            let include = IncludeObject::from_query(q)?;
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
            json_with(
                code,
                TABLE_CONTENT_TYPE,
                &table(r, std::slice::from_ref(obj), json!({"resourceVersion": rv}), include),
            )
        }
        Shape::PartialMetadata => json_with(code, "application/json", &partial_metadata(obj)),
        Shape::Object => json_with(code, "application/json", obj),
    };
    add_warnings(&mut resp, warnings);
    Ok(resp)
}

/// Adds `Warning: 299 - "..."` headers, which kubectl prints as `Warning: ...`.
pub fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
}
