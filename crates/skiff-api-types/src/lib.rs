//! The Kubernetes API of skiff, minus the I/O: which resources exist and how their objects are
//! defaulted, validated, selected, patched, printed as Tables and described in OpenAPI.
//!
//! Objects are handled as `serde_json::Value` trees, the form they are stored and served in;
//! typed models from `k8s-openapi` check their shape.

pub mod apply;
pub mod convert;
pub mod defaults;
pub mod names;
pub mod openapi;
pub mod protobuf;
pub mod registry;
pub mod selector;
pub mod strategic;
pub mod table;
pub mod typed;
pub mod validation;
