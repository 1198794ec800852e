//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`), translated to and from the
//! JSON form that skiff stores and serves.
//!
//! kubectl's typed commands (`create deployment`, `create namespace`, `auth can-i`, ...) send such
//! bodies: the magic bytes `k8s\0`, then a `runtime.Unknown` envelope whose `typeMeta` names the
//! kind and whose `raw` holds the object's own protobuf message.
//!
//! Instead of one typed struct per message, the wire format is read generically and steered by a
//! table (at the bottom of this file) that gives, for every message of the supported kinds, which
//! field number carries which JSON key and type. One table serves both directions, so [`encode`]
//! is the exact inverse of [`decode`], and covering a new kind means adding rows, not code. Field
//! numbers are those of the upstream `generated.proto` files (as carried by the `k8s-pb` crate);
//! JSON keys are the API's own camelCase names.
//!
//! The rules below make the result equal to the JSON form of the same object:
//! - A field present on the wire appears in the JSON even when it holds a zero value. Go clients
//!   write non-pointer scalars unconditionally (`namespace: ""`, `minReadySeconds: 0`); defaulting
//!   treats those as unset, so keeping them loses nothing. Absent repeated fields and messages are
//!   omitted.
//! - Go structs embedded in another struct (`LocalObjectReference` inside `ConfigMapKeySelector`,
//!   `VolumeSource` inside `Volume`, ...) are separate protobuf messages but inline JSON keys.
//! - `Time` is an RFC 3339 string with whole seconds and `MicroTime` one with six fractional
//!   digits, both in UTC; an empty `Time` message is Go's zero time, which JSON shows as `null`.
//! - `IntOrString` is a JSON number or string, `Quantity` its string, `bytes` standard base64,
//!   string-keyed maps JSON objects, and `FieldsV1` the JSON document it carries.
//! - Unknown field numbers are skipped, as protobuf requires and the Kubernetes API server does, so
//!   a newer client still gets through. `encode` refuses JSON keys the table lacks instead, since
//!   dropping them would silently lose data.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

/// The bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be decoded, or a JSON object could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`, so it is not a Kubernetes protobuf body.
    #[error("body does not start with the Kubernetes protobuf magic bytes")]
    MissingMagic,
    /// A varint, a length-delimited value or a fixed-size value runs past the end of its buffer.
    #[error("protobuf data is truncated")]
    Truncated,
    /// A varint does not fit in 64 bits.
    #[error("protobuf varint is longer than 64 bits")]
    VarintOverflow,
    /// A field key has field number 0 or one above 2^29-1, or a wire type Kubernetes never uses
    /// (groups, reserved values).
    #[error("invalid protobuf field key {0:#x}")]
    InvalidKey(u64),
    /// A known field arrived with a wire type its declared type cannot have.
    #[error("{message}.{field}: wire type {got}, expected {expected}")]
    WrongWireType {
        /// The protobuf message holding the field.
        message: &'static str,
        /// The field's JSON name.
        field: &'static str,
        /// The wire type on the wire.
        got: u8,
        /// The wire type the field's type implies.
        expected: u8,
    },
    /// A string field or map key is not valid UTF-8.
    #[error("{message}.{field}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// The protobuf message holding the field.
        message: &'static str,
        /// The field's JSON name.
        field: &'static str,
    },
    /// The envelope's `typeMeta`, or the JSON object to encode, lacks `apiVersion` or `kind`.
    #[error("object has no apiVersion and kind")]
    MissingTypeMeta,
    /// No table describes this kind; the server answers 415 Unsupported Media Type.
    #[error("protobuf is not supported for {api_version}, Kind={kind}")]
    UnsupportedKind {
        /// The object's apiVersion.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
    /// The envelope's `contentEncoding` says the object is compressed, which no client does.
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// A `Time` or `MicroTime` lies outside the years 0000-9999 or, when encoding, is not an
    /// RFC 3339 timestamp.
    #[error("{message}.{field}: invalid timestamp")]
    InvalidTimestamp {
        /// The protobuf message holding the field.
        message: &'static str,
        /// The field's JSON name.
        field: &'static str,
    },
    /// An `IntOrString` has a type other than 0 (int) or 1 (string).
    #[error("{message}.{field}: IntOrString type {kind} is neither int (0) nor string (1)")]
    InvalidIntOrString {
        /// The protobuf message holding the field.
        message: &'static str,
        /// The field's JSON name.
        field: &'static str,
        /// The type found.
        kind: u64,
    },
    /// A `FieldsV1` payload is not a JSON document.
    #[error("{message}.{field}: embedded document is not JSON: {reason}")]
    InvalidEmbeddedJson {
        /// The protobuf message holding the field.
        message: &'static str,
        /// The field's JSON name.
        field: &'static str,
        /// What the JSON parser said.
        reason: String,
    },
    /// The value given to [`encode`] is not a JSON object.
    #[error("only JSON objects can be encoded")]
    NotAnObject,
    /// A JSON value has the wrong type for its field, or a number out of the field's range.
    #[error("{message}.{field}: expected {expected}")]
    JsonType {
        /// The protobuf message holding the field.
        message: &'static str,
        /// The field's JSON name.
        field: &'static str,
        /// What the field accepts.
        expected: &'static str,
    },
    /// A JSON key has no field in the message, so encoding it would drop data.
    #[error("{message} has no field {field:?}")]
    UnknownJsonField {
        /// The protobuf message the key was found in.
        message: &'static str,
        /// The key.
        field: String,
    },
    /// A `bytes` value (Secret data, ConfigMap binaryData) is not base64.
    #[error("{message}.{field}: value is not base64")]
    InvalidBase64 {
        /// The protobuf message holding the field.
        message: &'static str,
        /// The field's JSON name.
        field: &'static str,
    },
}

type Result<T> = std::result::Result<T, ProtobufError>;

/// Standard base64 as Go's `encoding/json` writes `[]byte`; reading also accepts unpadded input,
/// which hand-written manifests sometimes contain.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const NANOS_PER_SECOND: i128 = 1_000_000_000;
/// RFC 3339 has four-digit years, so 0000-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z.
const RFC3339_SECONDS: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

const WIRE_VARINT: u8 = 0;
const WIRE_LEN: u8 = 2;

/// Whether [`decode`] and [`encode`] handle objects of this apiVersion and kind.
pub fn is_supported(api_version: &str, kind: &str) -> bool {
    root(api_version, kind).is_some()
}

fn root(api_version: &str, kind: &str) -> Option<&'static Msg> {
    ROOTS.iter().find(|(v, k, _)| *v == api_version && *k == kind).map(|(_, _, msg)| *msg)
}

/// Decodes a `k8s\0`-framed protobuf body into the object's JSON form, with `apiVersion` and
/// `kind` set from the envelope.
pub fn decode(body: &[u8]) -> Result<Value> {
    const ENVELOPE: &str = "Unknown";
    let envelope = body.strip_prefix(MAGIC.as_slice()).ok_or(ProtobufError::MissingMagic)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    let mut fields = Fields::new(envelope);
    while let Some((tag, wire)) = fields.next_field()? {
        match (tag, wire) {
            (1, Wire::Len(type_meta)) => {
                let mut meta = Fields::new(type_meta);
                while let Some((tag, wire)) = meta.next_field()? {
                    match (tag, wire) {
                        (1, Wire::Len(b)) => api_version = utf8(b, "TypeMeta", "apiVersion")?,
                        (2, Wire::Len(b)) => kind = utf8(b, "TypeMeta", "kind")?,
                        (1, w) => return Err(wrong_wire("TypeMeta", "apiVersion", w, WIRE_LEN)),
                        (2, w) => return Err(wrong_wire("TypeMeta", "kind", w, WIRE_LEN)),
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(b)) => raw = b,
            (3, Wire::Len(b)) if !b.is_empty() => {
                return Err(ProtobufError::UnsupportedContentEncoding(String::from_utf8_lossy(b).into_owned()))
            }
            // contentType only ever repeats the protobuf media type; the magic already proved it.
            (3 | 4, Wire::Len(_)) => {}
            (1, w) => return Err(wrong_wire(ENVELOPE, "typeMeta", w, WIRE_LEN)),
            (2, w) => return Err(wrong_wire(ENVELOPE, "raw", w, WIRE_LEN)),
            (3, w) => return Err(wrong_wire(ENVELOPE, "contentEncoding", w, WIRE_LEN)),
            (4, w) => return Err(wrong_wire(ENVELOPE, "contentType", w, WIRE_LEN)),
            _ => {}
        }
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let msg = root(&api_version, &kind)
        .ok_or_else(|| ProtobufError::UnsupportedKind { api_version: api_version.clone(), kind: kind.clone() })?;
    let mut object = Map::new();
    decode_message(msg, raw, &mut object)?;
    object.insert("apiVersion".into(), Value::String(api_version));
    object.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(object))
}

/// Encodes a JSON object (with `apiVersion` and `kind`) as a `k8s\0`-framed protobuf body, the
/// inverse of [`decode`].
pub fn encode(obj: &Value) -> Result<Vec<u8>> {
    let object = obj.as_object().ok_or(ProtobufError::NotAnObject)?;
    let api_version = object.get("apiVersion").and_then(Value::as_str).ok_or(ProtobufError::MissingTypeMeta)?;
    let kind = object.get("kind").and_then(Value::as_str).ok_or(ProtobufError::MissingTypeMeta)?;
    let msg = root(api_version, kind)
        .ok_or_else(|| ProtobufError::UnsupportedKind { api_version: api_version.to_owned(), kind: kind.to_owned() })?;
    check_keys(msg, object, &["apiVersion", "kind"])?;
    let mut raw = Vec::new();
    encode_fields(msg, object, &mut raw)?;
    let mut type_meta = Vec::new();
    put_len(&mut type_meta, 1, api_version.as_bytes());
    put_len(&mut type_meta, 2, kind.as_bytes());
    let mut body = MAGIC.to_vec();
    put_len(&mut body, 1, &type_meta);
    put_len(&mut body, 2, &raw);
    // Go's envelope always carries both strings; empty means "not compressed" and "protobuf".
    put_len(&mut body, 3, b"");
    put_len(&mut body, 4, b"");
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// Wire format

/// One field's value as the wire carries it. Fixed-width values are only ever skipped: none of
/// the supported messages has a float or fixed-width integer.
#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Len(&'a [u8]),
    Fixed32,
}

impl Wire<'_> {
    fn wire_type(self) -> u8 {
        match self {
            Wire::Varint(_) => 0,
            Wire::Fixed64 => 1,
            Wire::Len(_) => 2,
            Wire::Fixed32 => 5,
        }
    }
}

/// Reads the fields of one message, in wire order.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.buf.split_first().ok_or(ProtobufError::Truncated)?;
            self.buf = rest;
            // The tenth byte may only supply the 64th bit.
            if shift == 63 && byte > 1 {
                return Err(ProtobufError::VarintOverflow);
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::VarintOverflow)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if len > self.buf.len() {
            return Err(ProtobufError::Truncated);
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(ProtobufError::InvalidKey(key));
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => self.take(8).map(|_| Wire::Fixed64)?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ProtobufError::Truncated)?;
                Wire::Len(self.take(len)?)
            }
            5 => self.take(4).map(|_| Wire::Fixed32)?,
            _ => return Err(ProtobufError::InvalidKey(key)),
        };
        // Checked against MAX_FIELD_NUMBER above, so the number fits.
        Ok(Some((number as u32, wire)))
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    put_varint(out, (u64::from(tag) << 3) | u64::from(wire_type));
}

fn put_uint(out: &mut Vec<u8>, tag: u32, value: u64) {
    put_key(out, tag, WIRE_VARINT);
    put_varint(out, value);
}

fn put_len(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_key(out, tag, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn wrong_wire(message: &'static str, field: &'static str, wire: Wire<'_>, expected: u8) -> ProtobufError {
    ProtobufError::WrongWireType { message, field, got: wire.wire_type(), expected }
}

fn utf8(bytes: &[u8], message: &'static str, field: &'static str) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::InvalidUtf8 { message, field })
}

// ---------------------------------------------------------------------------------------------
// Schema

/// A field's element type: how it is carried on the wire and shown in JSON.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    M(&'static Msg),
    Time,
    MicroTime,
    IntOrString,
    Quantity,
    /// `FieldsV1`: a message whose field 1 holds a JSON document.
    RawJson,
}

impl Ty {
    fn wire_type(self) -> u8 {
        match self {
            Ty::Bool | Ty::I32 | Ty::I64 => WIRE_VARINT,
            _ => WIRE_LEN,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// At most one value (the last one on the wire wins, messages merge).
    One,
    /// A JSON array.
    List,
    /// A `map<string, T>`: repeated entry messages of key (1) and value (2), a JSON object.
    Map,
    /// An embedded Go struct: its own message on the wire, its keys inline in the parent's JSON.
    Inline,
}

struct Field {
    tag: u32,
    /// Empty for [`Shape::Inline`].
    json: &'static str,
    ty: Ty,
    shape: Shape,
}

struct Msg {
    name: &'static str,
    fields: &'static [Field],
}

impl Msg {
    fn field(&self, tag: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.tag == tag)
    }

    /// Whether `key` is a JSON key of this message, inlined ones included.
    fn knows(&self, key: &str) -> bool {
        self.fields.iter().any(|f| match (f.shape, f.ty) {
            (Shape::Inline, Ty::M(inner)) => inner.knows(key),
            _ => f.json == key,
        })
    }
}

const fn msg(name: &'static str, fields: &'static [Field]) -> Msg {
    Msg { name, fields }
}

const fn one(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field { tag, json, ty, shape: Shape::One }
}

const fn list(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field { tag, json, ty, shape: Shape::List }
}

const fn map(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field { tag, json, ty, shape: Shape::Map }
}

const fn inline(tag: u32, inner: &'static Msg) -> Field {
    Field { tag, json: "", ty: Ty::M(inner), shape: Shape::Inline }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes `buf` into `out`, merging with what is already there as protobuf merges a message
/// that occurs twice.
fn decode_message(msg: &'static Msg, buf: &[u8], out: &mut Map<String, Value>) -> Result<()> {
    let mut fields = Fields::new(buf);
    while let Some((tag, wire)) = fields.next_field()? {
        let Some(field) = msg.field(tag) else { continue };
        match (field.shape, field.ty, wire) {
            (Shape::Inline, Ty::M(inner), Wire::Len(b)) => decode_message(inner, b, out)?,
            (Shape::One, Ty::M(inner), Wire::Len(b)) => {
                let slot = out.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    decode_message(inner, b, existing)?;
                }
            }
            (Shape::One, ty, wire) => {
                let value = decode_value(msg, field, ty, wire)?;
                out.insert(field.json.into(), value);
            }
            (Shape::List, ty, wire) => {
                let slot = out.entry(field.json).or_insert_with(|| Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                if let Value::Array(items) = slot {
                    match wire {
                        // Packed encoding, which parsers must accept for repeated scalars even
                        // though Kubernetes writes them unpacked.
                        Wire::Len(b) if ty.wire_type() == WIRE_VARINT => {
                            let mut packed = Fields::new(b);
                            while !packed.buf.is_empty() {
                                let v = packed.varint()?;
                                items.push(decode_value(msg, field, ty, Wire::Varint(v))?);
                            }
                        }
                        _ => items.push(decode_value(msg, field, ty, wire)?),
                    }
                }
            }
            (Shape::Map, ty, Wire::Len(entry)) => {
                let (key, value) = decode_map_entry(msg, field, ty, entry)?;
                let slot = out.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(entries) = slot {
                    entries.insert(key, value);
                }
            }
            (Shape::Map | Shape::Inline, _, wire) => {
                return Err(wrong_wire(msg.name, field.error_name(), wire, WIRE_LEN));
            }
        }
    }
    Ok(())
}

impl Field {
    /// A name for error messages; inlined messages have no JSON key of their own.
    fn error_name(&self) -> &'static str {
        match (self.shape, self.ty) {
            (Shape::Inline, Ty::M(inner)) => inner.name,
            _ => self.json,
        }
    }
}

fn decode_map_entry(msg: &'static Msg, field: &'static Field, ty: Ty, entry: &[u8]) -> Result<(String, Value)> {
    let (mut key, mut value) = (String::new(), None);
    let mut fields = Fields::new(entry);
    while let Some((tag, wire)) = fields.next_field()? {
        match (tag, wire) {
            (1, Wire::Len(b)) => key = utf8(b, msg.name, field.json)?,
            (1, wire) => return Err(wrong_wire(msg.name, field.json, wire, WIRE_LEN)),
            (2, wire) => value = Some(decode_value(msg, field, ty, wire)?),
            _ => {}
        }
    }
    let value = match value {
        Some(value) => value,
        // An absent value is the type's zero value, which is what an empty one decodes to.
        None if ty.wire_type() == WIRE_LEN => decode_value(msg, field, ty, Wire::Len(&[]))?,
        None => decode_value(msg, field, ty, Wire::Varint(0))?,
    };
    Ok((key, value))
}

fn decode_value(msg: &'static Msg, field: &'static Field, ty: Ty, wire: Wire<'_>) -> Result<Value> {
    let (message, name) = (msg.name, field.json);
    Ok(match (ty, wire) {
        (Ty::Str, Wire::Len(b)) => Value::String(utf8(b, message, name)?),
        (Ty::Bytes, Wire::Len(b)) => Value::String(BASE64.encode(b)),
        (Ty::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // Protobuf int32 travels sign-extended to 64 bits; truncating recovers it.
        (Ty::I32, Wire::Varint(v)) => Value::from(v as i32),
        (Ty::I64, Wire::Varint(v)) => Value::from(v as i64),
        (Ty::M(inner), Wire::Len(b)) => {
            let mut object = Map::new();
            decode_message(inner, b, &mut object)?;
            Value::Object(object)
        }
        (Ty::Time, Wire::Len(b)) => decode_time(b, false, message, name)?,
        (Ty::MicroTime, Wire::Len(b)) => decode_time(b, true, message, name)?,
        (Ty::IntOrString, Wire::Len(b)) => {
            let [kind, int, string] = small_message(b, [WIRE_VARINT, WIRE_VARINT, WIRE_LEN], message, name)?;
            match varint_or_zero(kind) {
                0 => Value::from(varint_or_zero(int) as i32),
                1 => Value::String(utf8(bytes_or_empty(string), message, name)?),
                kind => return Err(ProtobufError::InvalidIntOrString { message, field: name, kind }),
            }
        }
        (Ty::Quantity, Wire::Len(b)) => {
            let [string] = small_message(b, [WIRE_LEN], message, name)?;
            let string = utf8(bytes_or_empty(string), message, name)?;
            // Go's zero Quantity, whose protobuf string is empty, reads back as "0".
            Value::String(if string.is_empty() { "0".into() } else { string })
        }
        (Ty::RawJson, Wire::Len(b)) => {
            let [raw] = small_message(b, [WIRE_LEN], message, name)?;
            match bytes_or_empty(raw) {
                [] => Value::Null,
                raw => serde_json::from_slice(raw).map_err(|e| ProtobufError::InvalidEmbeddedJson {
                    message,
                    field: name,
                    reason: e.to_string(),
                })?,
            }
        }
        (ty, wire) => return Err(wrong_wire(message, name, wire, ty.wire_type())),
    })
}

/// Reads a message of N scalar fields numbered 1..=N (Time, IntOrString, Quantity...), checking
/// each against its expected wire type; the last occurrence wins, unknown numbers are skipped.
fn small_message<'a, const N: usize>(
    buf: &'a [u8],
    wire_types: [u8; N],
    message: &'static str,
    field: &'static str,
) -> Result<[Option<Wire<'a>>; N]> {
    let mut found = [None; N];
    let mut fields = Fields::new(buf);
    while let Some((tag, wire)) = fields.next_field()? {
        let index = tag as usize - 1;
        if let (Some(slot), Some(&expected)) = (found.get_mut(index), wire_types.get(index)) {
            if wire.wire_type() != expected {
                return Err(wrong_wire(message, field, wire, expected));
            }
            *slot = Some(wire);
        }
    }
    Ok(found)
}

fn varint_or_zero(wire: Option<Wire<'_>>) -> u64 {
    match wire {
        Some(Wire::Varint(v)) => v,
        _ => 0,
    }
}

fn bytes_or_empty(wire: Option<Wire<'_>>) -> &[u8] {
    match wire {
        Some(Wire::Len(b)) => b,
        _ => &[],
    }
}

fn decode_time(buf: &[u8], micro: bool, message: &'static str, field: &'static str) -> Result<Value> {
    // Go writes nothing at all for the zero time, whose JSON form is null.
    if buf.is_empty() {
        return Ok(Value::Null);
    }
    let [seconds, nanos] = small_message(buf, [WIRE_VARINT, WIRE_VARINT], message, field)?;
    let total =
        i128::from(varint_or_zero(seconds) as i64) * NANOS_PER_SECOND + i128::from(varint_or_zero(nanos) as i32);
    format_time(total, micro).map(Value::String).ok_or(ProtobufError::InvalidTimestamp { message, field })
}

/// Formats like Go's `time.RFC3339` (`Time`) or metav1's `RFC3339Micro` (`MicroTime`) in UTC;
/// both truncate rather than round what they do not show.
fn format_time(total_nanos: i128, micro: bool) -> Option<String> {
    let seconds = i64::try_from(total_nanos.div_euclid(NANOS_PER_SECOND)).ok()?;
    if !RFC3339_SECONDS.contains(&seconds) {
        return None;
    }
    let whole = jiff::Timestamp::from_second(seconds).ok()?.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Some(if micro {
        format!("{whole}.{:06}Z", total_nanos.rem_euclid(NANOS_PER_SECOND) / 1000)
    } else {
        format!("{whole}Z")
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Refuses keys `msg` does not know, so nothing is dropped silently. Null values are let through
/// because they say "unset", which is what leaving them out encodes.
fn check_keys(msg: &'static Msg, object: &Map<String, Value>, extra: &[&str]) -> Result<()> {
    match object.iter().find(|(k, v)| !v.is_null() && !extra.contains(&k.as_str()) && !msg.knows(k)) {
        Some((key, _)) => Err(ProtobufError::UnknownJsonField { message: msg.name, field: key.clone() }),
        None => Ok(()),
    }
}

fn encode_fields(msg: &'static Msg, object: &Map<String, Value>, out: &mut Vec<u8>) -> Result<()> {
    for field in msg.fields {
        let (message, name) = (msg.name, field.json);
        let type_error = |expected| ProtobufError::JsonType { message, field: name, expected };
        match (field.shape, object.get(field.json)) {
            (Shape::Inline, _) => {
                if let Ty::M(inner) = field.ty {
                    let mut sub = Vec::new();
                    encode_fields(inner, object, &mut sub)?;
                    put_len(out, field.tag, &sub);
                }
            }
            // A null Time is Go's zero time, sent as an empty message, which decodes to null again.
            (Shape::One, Some(Value::Null)) if matches!(field.ty, Ty::Time | Ty::MicroTime) => {
                put_len(out, field.tag, &[]);
            }
            (_, None | Some(Value::Null)) => {}
            (Shape::One, Some(value)) => encode_value(out, field.tag, field.ty, value, message, name)?,
            (Shape::List, Some(Value::Array(items))) => {
                for item in items {
                    encode_value(out, field.tag, field.ty, item, message, name)?;
                }
            }
            (Shape::List, Some(_)) => return Err(type_error("an array")),
            (Shape::Map, Some(Value::Object(entries))) => {
                for (key, value) in entries {
                    let mut entry = Vec::new();
                    put_len(&mut entry, 1, key.as_bytes());
                    if !value.is_null() {
                        encode_value(&mut entry, 2, field.ty, value, message, name)?;
                    }
                    put_len(out, field.tag, &entry);
                }
            }
            (Shape::Map, Some(_)) => return Err(type_error("an object")),
        }
    }
    Ok(())
}

fn encode_value(
    out: &mut Vec<u8>,
    tag: u32,
    ty: Ty,
    value: &Value,
    message: &'static str,
    field: &'static str,
) -> Result<()> {
    let type_error = |expected| ProtobufError::JsonType { message, field, expected };
    let string = || value.as_str().ok_or(type_error("a string"));
    match ty {
        Ty::Str => put_len(out, tag, string()?.as_bytes()),
        Ty::Bytes => {
            let bytes = BASE64.decode(string()?).map_err(|_| ProtobufError::InvalidBase64 { message, field })?;
            put_len(out, tag, &bytes);
        }
        Ty::Bool => put_uint(out, tag, u64::from(value.as_bool().ok_or(type_error("a boolean"))?)),
        Ty::I32 => {
            let int = value.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or(type_error("a 32-bit integer"))?;
            // Negative int32 values are sign-extended to 64 bits on the wire.
            put_uint(out, tag, i64::from(int) as u64);
        }
        Ty::I64 => put_uint(out, tag, value.as_i64().ok_or(type_error("a 64-bit integer"))? as u64),
        Ty::M(inner) => {
            let object = value.as_object().ok_or(type_error("an object"))?;
            check_keys(inner, object, &[])?;
            let mut sub = Vec::new();
            encode_fields(inner, object, &mut sub)?;
            put_len(out, tag, &sub);
        }
        Ty::Time | Ty::MicroTime => {
            let invalid = ProtobufError::InvalidTimestamp { message, field };
            let timestamp: jiff::Timestamp = string()?.parse().map_err(|_| invalid.clone())?;
            // Refuse what decode would refuse, so every encoded body decodes again.
            if !RFC3339_SECONDS.contains(&timestamp.as_second()) {
                return Err(invalid);
            }
            let total = timestamp.as_nanosecond();
            let mut sub = Vec::new();
            // Seconds may be negative; nanos are always the non-negative remainder.
            put_uint(&mut sub, 1, total.div_euclid(NANOS_PER_SECOND) as i64 as u64);
            put_uint(&mut sub, 2, total.rem_euclid(NANOS_PER_SECOND) as u64);
            put_len(out, tag, &sub);
        }
        Ty::IntOrString => {
            let mut sub = Vec::new();
            match value {
                Value::String(s) => {
                    put_uint(&mut sub, 1, 1);
                    put_uint(&mut sub, 2, 0);
                    put_len(&mut sub, 3, s.as_bytes());
                }
                _ => {
                    let int = value
                        .as_i64()
                        .and_then(|i| i32::try_from(i).ok())
                        .ok_or(type_error("a 32-bit integer or a string"))?;
                    put_uint(&mut sub, 1, 0);
                    put_uint(&mut sub, 2, i64::from(int) as u64);
                    put_len(&mut sub, 3, b"");
                }
            }
            put_len(out, tag, &sub);
        }
        Ty::Quantity => {
            // Go also accepts a bare JSON number for a quantity; its string is the same digits.
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(type_error("a quantity string")),
            };
            let mut sub = Vec::new();
            put_len(&mut sub, 1, text.as_bytes());
            put_len(out, tag, &sub);
        }
        Ty::RawJson => {
            let raw = serde_json::to_vec(value).map_err(|e| ProtobufError::InvalidEmbeddedJson {
                message,
                field,
                reason: e.to_string(),
            })?;
            let mut sub = Vec::new();
            put_len(&mut sub, 1, &raw);
            put_len(out, tag, &sub);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The table: every message reachable from the supported kinds, top-down from each kind, with
// each message's fields in field-number order. Rows follow Kubernetes 1.35's generated.proto
// files (a superset of what kubectl 1.32 sends); keys that Go embeds inline appear as `inline`.

use Ty::{Bool, Bytes, IntOrString, MicroTime, Quantity, RawJson, Str, Time, I32, I64, M};

/// The kinds handled, by apiVersion and kind; each message below is reachable from one of them.
static ROOTS: &[(&str, &str, &Msg)] = &[
    ("apps/v1", "Deployment", &DEPLOYMENT),
    ("apps/v1", "ReplicaSet", &REPLICA_SET),
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "Service", &SERVICE),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("v1", "Pod", &POD),
    ("v1", "Event", &EVENT),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", &SELF_SUBJECT_ACCESS_REVIEW),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview", &SELF_SUBJECT_RULES_REVIEW),
    ("authentication.k8s.io/v1", "SelfSubjectReview", &SELF_SUBJECT_REVIEW),
    ("authentication.k8s.io/v1", "TokenRequest", &TOKEN_REQUEST),
    ("coordination.k8s.io/v1", "Lease", &LEASE),
    ("rbac.authorization.k8s.io/v1", "Role", &ROLE),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", &CLUSTER_ROLE),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", &ROLE_BINDING),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &CLUSTER_ROLE_BINDING),
];

static DEPLOYMENT: Msg = msg(
    "Deployment",
    &[
        one(1, "metadata", M(&OBJECT_META)),
        one(2, "spec", M(&DEPLOYMENT_SPEC)),
        one(3, "status", M(&DEPLOYMENT_STATUS)),
    ],
);
static OBJECT_META: Msg = msg(
    "ObjectMeta",
    &[
        one(1, "name", Str),
        one(2, "generateName", Str),
        one(3, "namespace", Str),
        one(4, "selfLink", Str),
        one(5, "uid", Str),
        one(6, "resourceVersion", Str),
        one(7, "generation", I64),
        one(8, "creationTimestamp", Time),
        one(9, "deletionTimestamp", Time),
        one(10, "deletionGracePeriodSeconds", I64),
        map(11, "labels", Str),
        map(12, "annotations", Str),
        list(13, "ownerReferences", M(&OWNER_REFERENCE)),
        list(14, "finalizers", Str),
        list(17, "managedFields", M(&MANAGED_FIELDS_ENTRY)),
    ],
);
static OWNER_REFERENCE: Msg = msg(
    "OwnerReference",
    &[
        one(1, "kind", Str),
        one(3, "name", Str),
        one(4, "uid", Str),
        one(5, "apiVersion", Str),
        one(6, "controller", Bool),
        one(7, "blockOwnerDeletion", Bool),
    ],
);
static MANAGED_FIELDS_ENTRY: Msg = msg(
    "ManagedFieldsEntry",
    &[
        one(1, "manager", Str),
        one(2, "operation", Str),
        one(3, "apiVersion", Str),
        one(4, "time", Time),
        one(6, "fieldsType", Str),
        one(7, "fieldsV1", RawJson),
        one(8, "subresource", Str),
    ],
);
static DEPLOYMENT_SPEC: Msg = msg(
    "DeploymentSpec",
    &[
        one(1, "replicas", I32),
        one(2, "selector", M(&LABEL_SELECTOR)),
        one(3, "template", M(&POD_TEMPLATE_SPEC)),
        one(4, "strategy", M(&DEPLOYMENT_STRATEGY)),
        one(5, "minReadySeconds", I32),
        one(6, "revisionHistoryLimit", I32),
        one(7, "paused", Bool),
        one(9, "progressDeadlineSeconds", I32),
    ],
);
static LABEL_SELECTOR: Msg =
    msg("LabelSelector", &[map(1, "matchLabels", Str), list(2, "matchExpressions", M(&LABEL_SELECTOR_REQUIREMENT))]);
static LABEL_SELECTOR_REQUIREMENT: Msg =
    msg("LabelSelectorRequirement", &[one(1, "key", Str), one(2, "operator", Str), list(3, "values", Str)]);
static POD_TEMPLATE_SPEC: Msg =
    msg("PodTemplateSpec", &[one(1, "metadata", M(&OBJECT_META)), one(2, "spec", M(&POD_SPEC))]);
static POD_SPEC: Msg = msg(
    "PodSpec",
    &[
        list(1, "volumes", M(&VOLUME)),
        list(2, "containers", M(&CONTAINER)),
        one(3, "restartPolicy", Str),
        one(4, "terminationGracePeriodSeconds", I64),
        one(5, "activeDeadlineSeconds", I64),
        one(6, "dnsPolicy", Str),
        map(7, "nodeSelector", Str),
        one(8, "serviceAccountName", Str),
        one(9, "serviceAccount", Str),
        one(10, "nodeName", Str),
        one(11, "hostNetwork", Bool),
        one(12, "hostPID", Bool),
        one(13, "hostIPC", Bool),
        one(14, "securityContext", M(&POD_SECURITY_CONTEXT)),
        list(15, "imagePullSecrets", M(&LOCAL_OBJECT_REFERENCE)),
        one(16, "hostname", Str),
        one(17, "subdomain", Str),
        one(18, "affinity", M(&AFFINITY)),
        one(19, "schedulerName", Str),
        list(20, "initContainers", M(&CONTAINER)),
        one(21, "automountServiceAccountToken", Bool),
        list(22, "tolerations", M(&TOLERATION)),
        list(23, "hostAliases", M(&HOST_ALIAS)),
        one(24, "priorityClassName", Str),
        one(25, "priority", I32),
        one(26, "dnsConfig", M(&POD_DNS_CONFIG)),
        one(27, "shareProcessNamespace", Bool),
        list(28, "readinessGates", M(&POD_READINESS_GATE)),
        one(29, "runtimeClassName", Str),
        one(30, "enableServiceLinks", Bool),
        one(31, "preemptionPolicy", Str),
        map(32, "overhead", Quantity),
        list(33, "topologySpreadConstraints", M(&TOPOLOGY_SPREAD_CONSTRAINT)),
        list(34, "ephemeralContainers", M(&EPHEMERAL_CONTAINER)),
        one(35, "setHostnameAsFQDN", Bool),
        one(36, "os", M(&POD_OS)),
        one(37, "hostUsers", Bool),
        list(38, "schedulingGates", M(&POD_SCHEDULING_GATE)),
        list(39, "resourceClaims", M(&POD_RESOURCE_CLAIM)),
        one(40, "resources", M(&RESOURCE_REQUIREMENTS)),
        one(41, "hostnameOverride", Str),
        one(42, "workloadRef", M(&WORKLOAD_REFERENCE)),
    ],
);
static VOLUME: Msg = msg("Volume", &[one(1, "name", Str), inline(2, &VOLUME_SOURCE)]);
static VOLUME_SOURCE: Msg = msg(
    "VolumeSource",
    &[
        one(1, "hostPath", M(&HOST_PATH_VOLUME_SOURCE)),
        one(2, "emptyDir", M(&EMPTY_DIR_VOLUME_SOURCE)),
        one(3, "gcePersistentDisk", M(&GCE_PERSISTENT_DISK_VOLUME_SOURCE)),
        one(4, "awsElasticBlockStore", M(&AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE)),
        one(5, "gitRepo", M(&GIT_REPO_VOLUME_SOURCE)),
        one(6, "secret", M(&SECRET_VOLUME_SOURCE)),
        one(7, "nfs", M(&NFS_VOLUME_SOURCE)),
        one(8, "iscsi", M(&ISCSI_VOLUME_SOURCE)),
        one(9, "glusterfs", M(&GLUSTERFS_VOLUME_SOURCE)),
        one(10, "persistentVolumeClaim", M(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE)),
        one(11, "rbd", M(&RBD_VOLUME_SOURCE)),
        one(12, "flexVolume", M(&FLEX_VOLUME_SOURCE)),
        one(13, "cinder", M(&CINDER_VOLUME_SOURCE)),
        one(14, "cephfs", M(&CEPH_FS_VOLUME_SOURCE)),
        one(15, "flocker", M(&FLOCKER_VOLUME_SOURCE)),
        one(16, "downwardAPI", M(&DOWNWARD_API_VOLUME_SOURCE)),
        one(17, "fc", M(&FC_VOLUME_SOURCE)),
        one(18, "azureFile", M(&AZURE_FILE_VOLUME_SOURCE)),
        one(19, "configMap", M(&CONFIG_MAP_VOLUME_SOURCE)),
        one(20, "vsphereVolume", M(&VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE)),
        one(21, "quobyte", M(&QUOBYTE_VOLUME_SOURCE)),
        one(22, "azureDisk", M(&AZURE_DISK_VOLUME_SOURCE)),
        one(23, "photonPersistentDisk", M(&PHOTON_PERSISTENT_DISK_VOLUME_SOURCE)),
        one(24, "portworxVolume", M(&PORTWORX_VOLUME_SOURCE)),
        one(25, "scaleIO", M(&SCALE_IO_VOLUME_SOURCE)),
        one(26, "projected", M(&PROJECTED_VOLUME_SOURCE)),
        one(27, "storageos", M(&STORAGE_OS_VOLUME_SOURCE)),
        one(28, "csi", M(&CSI_VOLUME_SOURCE)),
        one(29, "ephemeral", M(&EPHEMERAL_VOLUME_SOURCE)),
        one(30, "image", M(&IMAGE_VOLUME_SOURCE)),
    ],
);
static HOST_PATH_VOLUME_SOURCE: Msg = msg("HostPathVolumeSource", &[one(1, "path", Str), one(2, "type", Str)]);
static EMPTY_DIR_VOLUME_SOURCE: Msg =
    msg("EmptyDirVolumeSource", &[one(1, "medium", Str), one(2, "sizeLimit", Quantity)]);
static GCE_PERSISTENT_DISK_VOLUME_SOURCE: Msg = msg(
    "GcePersistentDiskVolumeSource",
    &[one(1, "pdName", Str), one(2, "fsType", Str), one(3, "partition", I32), one(4, "readOnly", Bool)],
);
static AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE: Msg = msg(
    "AwsElasticBlockStoreVolumeSource",
    &[one(1, "volumeID", Str), one(2, "fsType", Str), one(3, "partition", I32), one(4, "readOnly", Bool)],
);
static GIT_REPO_VOLUME_SOURCE: Msg =
    msg("GitRepoVolumeSource", &[one(1, "repository", Str), one(2, "revision", Str), one(3, "directory", Str)]);
static SECRET_VOLUME_SOURCE: Msg = msg(
    "SecretVolumeSource",
    &[
        one(1, "secretName", Str),
        list(2, "items", M(&KEY_TO_PATH)),
        one(3, "defaultMode", I32),
        one(4, "optional", Bool),
    ],
);
static KEY_TO_PATH: Msg = msg("KeyToPath", &[one(1, "key", Str), one(2, "path", Str), one(3, "mode", I32)]);
static NFS_VOLUME_SOURCE: Msg =
    msg("NfsVolumeSource", &[one(1, "server", Str), one(2, "path", Str), one(3, "readOnly", Bool)]);
static ISCSI_VOLUME_SOURCE: Msg = msg(
    "IscsiVolumeSource",
    &[
        one(1, "targetPortal", Str),
        one(2, "iqn", Str),
        one(3, "lun", I32),
        one(4, "iscsiInterface", Str),
        one(5, "fsType", Str),
        one(6, "readOnly", Bool),
        list(7, "portals", Str),
        one(8, "chapAuthDiscovery", Bool),
        one(10, "secretRef", M(&LOCAL_OBJECT_REFERENCE)),
        one(11, "chapAuthSession", Bool),
        one(12, "initiatorName", Str),
    ],
);
static LOCAL_OBJECT_REFERENCE: Msg = msg("LocalObjectReference", &[one(1, "name", Str)]);
static GLUSTERFS_VOLUME_SOURCE: Msg =
    msg("GlusterfsVolumeSource", &[one(1, "endpoints", Str), one(2, "path", Str), one(3, "readOnly", Bool)]);
static PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Msg =
    msg("PersistentVolumeClaimVolumeSource", &[one(1, "claimName", Str), one(2, "readOnly", Bool)]);
static RBD_VOLUME_SOURCE: Msg = msg(
    "RbdVolumeSource",
    &[
        list(1, "monitors", Str),
        one(2, "image", Str),
        one(3, "fsType", Str),
        one(4, "pool", Str),
        one(5, "user", Str),
        one(6, "keyring", Str),
        one(7, "secretRef", M(&LOCAL_OBJECT_REFERENCE)),
        one(8, "readOnly", Bool),
    ],
);
static FLEX_VOLUME_SOURCE: Msg = msg(
    "FlexVolumeSource",
    &[
        one(1, "driver", Str),
        one(2, "fsType", Str),
        one(3, "secretRef", M(&LOCAL_OBJECT_REFERENCE)),
        one(4, "readOnly", Bool),
        map(5, "options", Str),
    ],
);
static CINDER_VOLUME_SOURCE: Msg = msg(
    "CinderVolumeSource",
    &[
        one(1, "volumeID", Str),
        one(2, "fsType", Str),
        one(3, "readOnly", Bool),
        one(4, "secretRef", M(&LOCAL_OBJECT_REFERENCE)),
    ],
);
static CEPH_FS_VOLUME_SOURCE: Msg = msg(
    "CephFsVolumeSource",
    &[
        list(1, "monitors", Str),
        one(2, "path", Str),
        one(3, "user", Str),
        one(4, "secretFile", Str),
        one(5, "secretRef", M(&LOCAL_OBJECT_REFERENCE)),
        one(6, "readOnly", Bool),
    ],
);
static FLOCKER_VOLUME_SOURCE: Msg =
    msg("FlockerVolumeSource", &[one(1, "datasetName", Str), one(2, "datasetUUID", Str)]);
static DOWNWARD_API_VOLUME_SOURCE: Msg =
    msg("DownwardAPIVolumeSource", &[list(1, "items", M(&DOWNWARD_API_VOLUME_FILE)), one(2, "defaultMode", I32)]);
static DOWNWARD_API_VOLUME_FILE: Msg = msg(
    "DownwardAPIVolumeFile",
    &[
        one(1, "path", Str),
        one(2, "fieldRef", M(&OBJECT_FIELD_SELECTOR)),
        one(3, "resourceFieldRef", M(&RESOURCE_FIELD_SELECTOR)),
        one(4, "mode", I32),
    ],
);
static OBJECT_FIELD_SELECTOR: Msg = msg("ObjectFieldSelector", &[one(1, "apiVersion", Str), one(2, "fieldPath", Str)]);
static RESOURCE_FIELD_SELECTOR: Msg =
    msg("ResourceFieldSelector", &[one(1, "containerName", Str), one(2, "resource", Str), one(3, "divisor", Quantity)]);
static FC_VOLUME_SOURCE: Msg = msg(
    "FcVolumeSource",
    &[
        list(1, "targetWWNs", Str),
        one(2, "lun", I32),
        one(3, "fsType", Str),
        one(4, "readOnly", Bool),
        list(5, "wwids", Str),
    ],
);
static AZURE_FILE_VOLUME_SOURCE: Msg =
    msg("AzureFileVolumeSource", &[one(1, "secretName", Str), one(2, "shareName", Str), one(3, "readOnly", Bool)]);
static CONFIG_MAP_VOLUME_SOURCE: Msg = msg(
    "ConfigMapVolumeSource",
    &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        list(2, "items", M(&KEY_TO_PATH)),
        one(3, "defaultMode", I32),
        one(4, "optional", Bool),
    ],
);
static VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE: Msg = msg(
    "VsphereVirtualDiskVolumeSource",
    &[
        one(1, "volumePath", Str),
        one(2, "fsType", Str),
        one(3, "storagePolicyName", Str),
        one(4, "storagePolicyID", Str),
    ],
);
static QUOBYTE_VOLUME_SOURCE: Msg = msg(
    "QuobyteVolumeSource",
    &[
        one(1, "registry", Str),
        one(2, "volume", Str),
        one(3, "readOnly", Bool),
        one(4, "user", Str),
        one(5, "group", Str),
        one(6, "tenant", Str),
    ],
);
static AZURE_DISK_VOLUME_SOURCE: Msg = msg(
    "AzureDiskVolumeSource",
    &[
        one(1, "diskName", Str),
        one(2, "diskURI", Str),
        one(3, "cachingMode", Str),
        one(4, "fsType", Str),
        one(5, "readOnly", Bool),
        one(6, "kind", Str),
    ],
);
static PHOTON_PERSISTENT_DISK_VOLUME_SOURCE: Msg =
    msg("PhotonPersistentDiskVolumeSource", &[one(1, "pdID", Str), one(2, "fsType", Str)]);
static PORTWORX_VOLUME_SOURCE: Msg =
    msg("PortworxVolumeSource", &[one(1, "volumeID", Str), one(2, "fsType", Str), one(3, "readOnly", Bool)]);
static SCALE_IO_VOLUME_SOURCE: Msg = msg(
    "ScaleIoVolumeSource",
    &[
        one(1, "gateway", Str),
        one(2, "system", Str),
        one(3, "secretRef", M(&LOCAL_OBJECT_REFERENCE)),
        one(4, "sslEnabled", Bool),
        one(5, "protectionDomain", Str),
        one(6, "storagePool", Str),
        one(7, "storageMode", Str),
        one(8, "volumeName", Str),
        one(9, "fsType", Str),
        one(10, "readOnly", Bool),
    ],
);
static PROJECTED_VOLUME_SOURCE: Msg =
    msg("ProjectedVolumeSource", &[list(1, "sources", M(&VOLUME_PROJECTION)), one(2, "defaultMode", I32)]);
static VOLUME_PROJECTION: Msg = msg(
    "VolumeProjection",
    &[
        one(1, "secret", M(&SECRET_PROJECTION)),
        one(2, "downwardAPI", M(&DOWNWARD_API_PROJECTION)),
        one(3, "configMap", M(&CONFIG_MAP_PROJECTION)),
        one(4, "serviceAccountToken", M(&SERVICE_ACCOUNT_TOKEN_PROJECTION)),
        one(5, "clusterTrustBundle", M(&CLUSTER_TRUST_BUNDLE_PROJECTION)),
        one(6, "podCertificate", M(&POD_CERTIFICATE_PROJECTION)),
    ],
);
static SECRET_PROJECTION: Msg = msg(
    "SecretProjection",
    &[inline(1, &LOCAL_OBJECT_REFERENCE), list(2, "items", M(&KEY_TO_PATH)), one(4, "optional", Bool)],
);
static DOWNWARD_API_PROJECTION: Msg = msg("DownwardAPIProjection", &[list(1, "items", M(&DOWNWARD_API_VOLUME_FILE))]);
static CONFIG_MAP_PROJECTION: Msg = msg(
    "ConfigMapProjection",
    &[inline(1, &LOCAL_OBJECT_REFERENCE), list(2, "items", M(&KEY_TO_PATH)), one(4, "optional", Bool)],
);
static SERVICE_ACCOUNT_TOKEN_PROJECTION: Msg = msg(
    "ServiceAccountTokenProjection",
    &[one(1, "audience", Str), one(2, "expirationSeconds", I64), one(3, "path", Str)],
);
static CLUSTER_TRUST_BUNDLE_PROJECTION: Msg = msg(
    "ClusterTrustBundleProjection",
    &[
        one(1, "name", Str),
        one(2, "signerName", Str),
        one(3, "labelSelector", M(&LABEL_SELECTOR)),
        one(4, "path", Str),
        one(5, "optional", Bool),
    ],
);
static POD_CERTIFICATE_PROJECTION: Msg = msg(
    "PodCertificateProjection",
    &[
        one(1, "signerName", Str),
        one(2, "keyType", Str),
        one(3, "maxExpirationSeconds", I32),
        one(4, "credentialBundlePath", Str),
        one(5, "keyPath", Str),
        one(6, "certificateChainPath", Str),
        map(7, "userAnnotations", Str),
    ],
);
static STORAGE_OS_VOLUME_SOURCE: Msg = msg(
    "StorageOsVolumeSource",
    &[
        one(1, "volumeName", Str),
        one(2, "volumeNamespace", Str),
        one(3, "fsType", Str),
        one(4, "readOnly", Bool),
        one(5, "secretRef", M(&LOCAL_OBJECT_REFERENCE)),
    ],
);
static CSI_VOLUME_SOURCE: Msg = msg(
    "CSIVolumeSource",
    &[
        one(1, "driver", Str),
        one(2, "readOnly", Bool),
        one(3, "fsType", Str),
        map(4, "volumeAttributes", Str),
        one(5, "nodePublishSecretRef", M(&LOCAL_OBJECT_REFERENCE)),
    ],
);
static EPHEMERAL_VOLUME_SOURCE: Msg =
    msg("EphemeralVolumeSource", &[one(1, "volumeClaimTemplate", M(&PERSISTENT_VOLUME_CLAIM_TEMPLATE))]);
static PERSISTENT_VOLUME_CLAIM_TEMPLATE: Msg = msg(
    "PersistentVolumeClaimTemplate",
    &[one(1, "metadata", M(&OBJECT_META)), one(2, "spec", M(&PERSISTENT_VOLUME_CLAIM_SPEC))],
);
static PERSISTENT_VOLUME_CLAIM_SPEC: Msg = msg(
    "PersistentVolumeClaimSpec",
    &[
        list(1, "accessModes", Str),
        one(2, "resources", M(&VOLUME_RESOURCE_REQUIREMENTS)),
        one(3, "volumeName", Str),
        one(4, "selector", M(&LABEL_SELECTOR)),
        one(5, "storageClassName", Str),
        one(6, "volumeMode", Str),
        one(7, "dataSource", M(&TYPED_LOCAL_OBJECT_REFERENCE)),
        one(8, "dataSourceRef", M(&TYPED_OBJECT_REFERENCE)),
        one(9, "volumeAttributesClassName", Str),
    ],
);
static VOLUME_RESOURCE_REQUIREMENTS: Msg =
    msg("VolumeResourceRequirements", &[map(1, "limits", Quantity), map(2, "requests", Quantity)]);
static TYPED_LOCAL_OBJECT_REFERENCE: Msg =
    msg("TypedLocalObjectReference", &[one(1, "apiGroup", Str), one(2, "kind", Str), one(3, "name", Str)]);
static TYPED_OBJECT_REFERENCE: Msg = msg(
    "TypedObjectReference",
    &[one(1, "apiGroup", Str), one(2, "kind", Str), one(3, "name", Str), one(4, "namespace", Str)],
);
static IMAGE_VOLUME_SOURCE: Msg = msg("ImageVolumeSource", &[one(1, "reference", Str), one(2, "pullPolicy", Str)]);
static CONTAINER: Msg = msg(
    "Container",
    &[
        one(1, "name", Str),
        one(2, "image", Str),
        list(3, "command", Str),
        list(4, "args", Str),
        one(5, "workingDir", Str),
        list(6, "ports", M(&CONTAINER_PORT)),
        list(7, "env", M(&ENV_VAR)),
        one(8, "resources", M(&RESOURCE_REQUIREMENTS)),
        list(9, "volumeMounts", M(&VOLUME_MOUNT)),
        one(10, "livenessProbe", M(&PROBE)),
        one(11, "readinessProbe", M(&PROBE)),
        one(12, "lifecycle", M(&LIFECYCLE)),
        one(13, "terminationMessagePath", Str),
        one(14, "imagePullPolicy", Str),
        one(15, "securityContext", M(&SECURITY_CONTEXT)),
        one(16, "stdin", Bool),
        one(17, "stdinOnce", Bool),
        one(18, "tty", Bool),
        list(19, "envFrom", M(&ENV_FROM_SOURCE)),
        one(20, "terminationMessagePolicy", Str),
        list(21, "volumeDevices", M(&VOLUME_DEVICE)),
        one(22, "startupProbe", M(&PROBE)),
        list(23, "resizePolicy", M(&CONTAINER_RESIZE_POLICY)),
        one(24, "restartPolicy", Str),
        list(25, "restartPolicyRules", M(&CONTAINER_RESTART_RULE)),
    ],
);
static CONTAINER_PORT: Msg = msg(
    "ContainerPort",
    &[
        one(1, "name", Str),
        one(2, "hostPort", I32),
        one(3, "containerPort", I32),
        one(4, "protocol", Str),
        one(5, "hostIP", Str),
    ],
);
static ENV_VAR: Msg =
    msg("EnvVar", &[one(1, "name", Str), one(2, "value", Str), one(3, "valueFrom", M(&ENV_VAR_SOURCE))]);
static ENV_VAR_SOURCE: Msg = msg(
    "EnvVarSource",
    &[
        one(1, "fieldRef", M(&OBJECT_FIELD_SELECTOR)),
        one(2, "resourceFieldRef", M(&RESOURCE_FIELD_SELECTOR)),
        one(3, "configMapKeyRef", M(&CONFIG_MAP_KEY_SELECTOR)),
        one(4, "secretKeyRef", M(&SECRET_KEY_SELECTOR)),
        one(5, "fileKeyRef", M(&FILE_KEY_SELECTOR)),
    ],
);
static CONFIG_MAP_KEY_SELECTOR: Msg =
    msg("ConfigMapKeySelector", &[inline(1, &LOCAL_OBJECT_REFERENCE), one(2, "key", Str), one(3, "optional", Bool)]);
static SECRET_KEY_SELECTOR: Msg =
    msg("SecretKeySelector", &[inline(1, &LOCAL_OBJECT_REFERENCE), one(2, "key", Str), one(3, "optional", Bool)]);
static FILE_KEY_SELECTOR: Msg = msg(
    "FileKeySelector",
    &[one(1, "volumeName", Str), one(2, "path", Str), one(3, "key", Str), one(4, "optional", Bool)],
);
static RESOURCE_REQUIREMENTS: Msg = msg(
    "ResourceRequirements",
    &[map(1, "limits", Quantity), map(2, "requests", Quantity), list(3, "claims", M(&RESOURCE_CLAIM))],
);
static RESOURCE_CLAIM: Msg = msg("ResourceClaim", &[one(1, "name", Str), one(2, "request", Str)]);
static VOLUME_MOUNT: Msg = msg(
    "VolumeMount",
    &[
        one(1, "name", Str),
        one(2, "readOnly", Bool),
        one(3, "mountPath", Str),
        one(4, "subPath", Str),
        one(5, "mountPropagation", Str),
        one(6, "subPathExpr", Str),
        one(7, "recursiveReadOnly", Str),
    ],
);
static PROBE: Msg = msg(
    "Probe",
    &[
        inline(1, &PROBE_HANDLER),
        one(2, "initialDelaySeconds", I32),
        one(3, "timeoutSeconds", I32),
        one(4, "periodSeconds", I32),
        one(5, "successThreshold", I32),
        one(6, "failureThreshold", I32),
        one(7, "terminationGracePeriodSeconds", I64),
    ],
);
static PROBE_HANDLER: Msg = msg(
    "ProbeHandler",
    &[
        one(1, "exec", M(&EXEC_ACTION)),
        one(2, "httpGet", M(&HTTP_GET_ACTION)),
        one(3, "tcpSocket", M(&TCP_SOCKET_ACTION)),
        one(4, "grpc", M(&GRPC_ACTION)),
    ],
);
static EXEC_ACTION: Msg = msg("ExecAction", &[list(1, "command", Str)]);
static HTTP_GET_ACTION: Msg = msg(
    "HttpGetAction",
    &[
        one(1, "path", Str),
        one(2, "port", IntOrString),
        one(3, "host", Str),
        one(4, "scheme", Str),
        list(5, "httpHeaders", M(&HTTP_HEADER)),
    ],
);
static HTTP_HEADER: Msg = msg("HttpHeader", &[one(1, "name", Str), one(2, "value", Str)]);
static TCP_SOCKET_ACTION: Msg = msg("TcpSocketAction", &[one(1, "port", IntOrString), one(2, "host", Str)]);
static GRPC_ACTION: Msg = msg("GrpcAction", &[one(1, "port", I32), one(2, "service", Str)]);
static LIFECYCLE: Msg = msg(
    "Lifecycle",
    &[one(1, "postStart", M(&LIFECYCLE_HANDLER)), one(2, "preStop", M(&LIFECYCLE_HANDLER)), one(3, "stopSignal", Str)],
);
static LIFECYCLE_HANDLER: Msg = msg(
    "LifecycleHandler",
    &[
        one(1, "exec", M(&EXEC_ACTION)),
        one(2, "httpGet", M(&HTTP_GET_ACTION)),
        one(3, "tcpSocket", M(&TCP_SOCKET_ACTION)),
        one(4, "sleep", M(&SLEEP_ACTION)),
    ],
);
static SLEEP_ACTION: Msg = msg("SleepAction", &[one(1, "seconds", I64)]);
static SECURITY_CONTEXT: Msg = msg(
    "SecurityContext",
    &[
        one(1, "capabilities", M(&CAPABILITIES)),
        one(2, "privileged", Bool),
        one(3, "seLinuxOptions", M(&SE_LINUX_OPTIONS)),
        one(4, "runAsUser", I64),
        one(5, "runAsNonRoot", Bool),
        one(6, "readOnlyRootFilesystem", Bool),
        one(7, "allowPrivilegeEscalation", Bool),
        one(8, "runAsGroup", I64),
        one(9, "procMount", Str),
        one(10, "windowsOptions", M(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        one(11, "seccompProfile", M(&SECCOMP_PROFILE)),
        one(12, "appArmorProfile", M(&APP_ARMOR_PROFILE)),
    ],
);
static CAPABILITIES: Msg = msg("Capabilities", &[list(1, "add", Str), list(2, "drop", Str)]);
static SE_LINUX_OPTIONS: Msg =
    msg("SeLinuxOptions", &[one(1, "user", Str), one(2, "role", Str), one(3, "type", Str), one(4, "level", Str)]);
static WINDOWS_SECURITY_CONTEXT_OPTIONS: Msg = msg(
    "WindowsSecurityContextOptions",
    &[
        one(1, "gmsaCredentialSpecName", Str),
        one(2, "gmsaCredentialSpec", Str),
        one(3, "runAsUserName", Str),
        one(4, "hostProcess", Bool),
    ],
);
static SECCOMP_PROFILE: Msg = msg("SeccompProfile", &[one(1, "type", Str), one(2, "localhostProfile", Str)]);
static APP_ARMOR_PROFILE: Msg = msg("AppArmorProfile", &[one(1, "type", Str), one(2, "localhostProfile", Str)]);
static ENV_FROM_SOURCE: Msg = msg(
    "EnvFromSource",
    &[
        one(1, "prefix", Str),
        one(2, "configMapRef", M(&CONFIG_MAP_ENV_SOURCE)),
        one(3, "secretRef", M(&SECRET_ENV_SOURCE)),
    ],
);
static CONFIG_MAP_ENV_SOURCE: Msg =
    msg("ConfigMapEnvSource", &[inline(1, &LOCAL_OBJECT_REFERENCE), one(2, "optional", Bool)]);
static SECRET_ENV_SOURCE: Msg = msg("SecretEnvSource", &[inline(1, &LOCAL_OBJECT_REFERENCE), one(2, "optional", Bool)]);
static VOLUME_DEVICE: Msg = msg("VolumeDevice", &[one(1, "name", Str), one(2, "devicePath", Str)]);
static CONTAINER_RESIZE_POLICY: Msg =
    msg("ContainerResizePolicy", &[one(1, "resourceName", Str), one(2, "restartPolicy", Str)]);
static CONTAINER_RESTART_RULE: Msg = msg(
    "ContainerRestartRule",
    &[one(1, "action", Str), one(2, "exitCodes", M(&CONTAINER_RESTART_RULE_ON_EXIT_CODES))],
);
static CONTAINER_RESTART_RULE_ON_EXIT_CODES: Msg =
    msg("ContainerRestartRuleOnExitCodes", &[one(1, "operator", Str), list(2, "values", I32)]);
static POD_SECURITY_CONTEXT: Msg = msg(
    "PodSecurityContext",
    &[
        one(1, "seLinuxOptions", M(&SE_LINUX_OPTIONS)),
        one(2, "runAsUser", I64),
        one(3, "runAsNonRoot", Bool),
        list(4, "supplementalGroups", I64),
        one(5, "fsGroup", I64),
        one(6, "runAsGroup", I64),
        list(7, "sysctls", M(&SYSCTL)),
        one(8, "windowsOptions", M(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        one(9, "fsGroupChangePolicy", Str),
        one(10, "seccompProfile", M(&SECCOMP_PROFILE)),
        one(11, "appArmorProfile", M(&APP_ARMOR_PROFILE)),
        one(12, "supplementalGroupsPolicy", Str),
        one(13, "seLinuxChangePolicy", Str),
    ],
);
static SYSCTL: Msg = msg("Sysctl", &[one(1, "name", Str), one(2, "value", Str)]);
static AFFINITY: Msg = msg(
    "Affinity",
    &[
        one(1, "nodeAffinity", M(&NODE_AFFINITY)),
        one(2, "podAffinity", M(&POD_AFFINITY)),
        one(3, "podAntiAffinity", M(&POD_ANTI_AFFINITY)),
    ],
);
static NODE_AFFINITY: Msg = msg(
    "NodeAffinity",
    &[
        one(1, "requiredDuringSchedulingIgnoredDuringExecution", M(&NODE_SELECTOR)),
        list(2, "preferredDuringSchedulingIgnoredDuringExecution", M(&PREFERRED_SCHEDULING_TERM)),
    ],
);
static NODE_SELECTOR: Msg = msg("NodeSelector", &[list(1, "nodeSelectorTerms", M(&NODE_SELECTOR_TERM))]);
static NODE_SELECTOR_TERM: Msg = msg(
    "NodeSelectorTerm",
    &[
        list(1, "matchExpressions", M(&NODE_SELECTOR_REQUIREMENT)),
        list(2, "matchFields", M(&NODE_SELECTOR_REQUIREMENT)),
    ],
);
static NODE_SELECTOR_REQUIREMENT: Msg =
    msg("NodeSelectorRequirement", &[one(1, "key", Str), one(2, "operator", Str), list(3, "values", Str)]);
static PREFERRED_SCHEDULING_TERM: Msg =
    msg("PreferredSchedulingTerm", &[one(1, "weight", I32), one(2, "preference", M(&NODE_SELECTOR_TERM))]);
static POD_AFFINITY: Msg = msg(
    "PodAffinity",
    &[
        list(1, "requiredDuringSchedulingIgnoredDuringExecution", M(&POD_AFFINITY_TERM)),
        list(2, "preferredDuringSchedulingIgnoredDuringExecution", M(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
);
static POD_AFFINITY_TERM: Msg = msg(
    "PodAffinityTerm",
    &[
        one(1, "labelSelector", M(&LABEL_SELECTOR)),
        list(2, "namespaces", Str),
        one(3, "topologyKey", Str),
        one(4, "namespaceSelector", M(&LABEL_SELECTOR)),
        list(5, "matchLabelKeys", Str),
        list(6, "mismatchLabelKeys", Str),
    ],
);
static WEIGHTED_POD_AFFINITY_TERM: Msg =
    msg("WeightedPodAffinityTerm", &[one(1, "weight", I32), one(2, "podAffinityTerm", M(&POD_AFFINITY_TERM))]);
static POD_ANTI_AFFINITY: Msg = msg(
    "PodAntiAffinity",
    &[
        list(1, "requiredDuringSchedulingIgnoredDuringExecution", M(&POD_AFFINITY_TERM)),
        list(2, "preferredDuringSchedulingIgnoredDuringExecution", M(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
);
static TOLERATION: Msg = msg(
    "Toleration",
    &[
        one(1, "key", Str),
        one(2, "operator", Str),
        one(3, "value", Str),
        one(4, "effect", Str),
        one(5, "tolerationSeconds", I64),
    ],
);
static HOST_ALIAS: Msg = msg("HostAlias", &[one(1, "ip", Str), list(2, "hostnames", Str)]);
static POD_DNS_CONFIG: Msg = msg(
    "PodDnsConfig",
    &[list(1, "nameservers", Str), list(2, "searches", Str), list(3, "options", M(&POD_DNS_CONFIG_OPTION))],
);
static POD_DNS_CONFIG_OPTION: Msg = msg("PodDnsConfigOption", &[one(1, "name", Str), one(2, "value", Str)]);
static POD_READINESS_GATE: Msg = msg("PodReadinessGate", &[one(1, "conditionType", Str)]);
static TOPOLOGY_SPREAD_CONSTRAINT: Msg = msg(
    "TopologySpreadConstraint",
    &[
        one(1, "maxSkew", I32),
        one(2, "topologyKey", Str),
        one(3, "whenUnsatisfiable", Str),
        one(4, "labelSelector", M(&LABEL_SELECTOR)),
        one(5, "minDomains", I32),
        one(6, "nodeAffinityPolicy", Str),
        one(7, "nodeTaintsPolicy", Str),
        list(8, "matchLabelKeys", Str),
    ],
);
static EPHEMERAL_CONTAINER: Msg =
    msg("EphemeralContainer", &[inline(1, &EPHEMERAL_CONTAINER_COMMON), one(2, "targetContainerName", Str)]);
static EPHEMERAL_CONTAINER_COMMON: Msg = msg(
    "EphemeralContainerCommon",
    &[
        one(1, "name", Str),
        one(2, "image", Str),
        list(3, "command", Str),
        list(4, "args", Str),
        one(5, "workingDir", Str),
        list(6, "ports", M(&CONTAINER_PORT)),
        list(7, "env", M(&ENV_VAR)),
        one(8, "resources", M(&RESOURCE_REQUIREMENTS)),
        list(9, "volumeMounts", M(&VOLUME_MOUNT)),
        one(10, "livenessProbe", M(&PROBE)),
        one(11, "readinessProbe", M(&PROBE)),
        one(12, "lifecycle", M(&LIFECYCLE)),
        one(13, "terminationMessagePath", Str),
        one(14, "imagePullPolicy", Str),
        one(15, "securityContext", M(&SECURITY_CONTEXT)),
        one(16, "stdin", Bool),
        one(17, "stdinOnce", Bool),
        one(18, "tty", Bool),
        list(19, "envFrom", M(&ENV_FROM_SOURCE)),
        one(20, "terminationMessagePolicy", Str),
        list(21, "volumeDevices", M(&VOLUME_DEVICE)),
        one(22, "startupProbe", M(&PROBE)),
        list(23, "resizePolicy", M(&CONTAINER_RESIZE_POLICY)),
        one(24, "restartPolicy", Str),
        list(25, "restartPolicyRules", M(&CONTAINER_RESTART_RULE)),
    ],
);
static POD_OS: Msg = msg("PodOs", &[one(1, "name", Str)]);
static POD_SCHEDULING_GATE: Msg = msg("PodSchedulingGate", &[one(1, "name", Str)]);
static POD_RESOURCE_CLAIM: Msg = msg(
    "PodResourceClaim",
    &[one(1, "name", Str), one(3, "resourceClaimName", Str), one(4, "resourceClaimTemplateName", Str)],
);
static WORKLOAD_REFERENCE: Msg =
    msg("WorkloadReference", &[one(1, "name", Str), one(2, "podGroup", Str), one(3, "podGroupReplicaKey", Str)]);
static DEPLOYMENT_STRATEGY: Msg =
    msg("DeploymentStrategy", &[one(1, "type", Str), one(2, "rollingUpdate", M(&ROLLING_UPDATE_DEPLOYMENT))]);
static ROLLING_UPDATE_DEPLOYMENT: Msg =
    msg("RollingUpdateDeployment", &[one(1, "maxUnavailable", IntOrString), one(2, "maxSurge", IntOrString)]);
static DEPLOYMENT_STATUS: Msg = msg(
    "DeploymentStatus",
    &[
        one(1, "observedGeneration", I64),
        one(2, "replicas", I32),
        one(3, "updatedReplicas", I32),
        one(4, "availableReplicas", I32),
        one(5, "unavailableReplicas", I32),
        list(6, "conditions", M(&DEPLOYMENT_CONDITION)),
        one(7, "readyReplicas", I32),
        one(8, "collisionCount", I32),
        one(9, "terminatingReplicas", I32),
    ],
);
static DEPLOYMENT_CONDITION: Msg = msg(
    "DeploymentCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(4, "reason", Str),
        one(5, "message", Str),
        one(6, "lastUpdateTime", Time),
        one(7, "lastTransitionTime", Time),
    ],
);
static REPLICA_SET: Msg = msg(
    "ReplicaSet",
    &[
        one(1, "metadata", M(&OBJECT_META)),
        one(2, "spec", M(&REPLICA_SET_SPEC)),
        one(3, "status", M(&REPLICA_SET_STATUS)),
    ],
);
static REPLICA_SET_SPEC: Msg = msg(
    "ReplicaSetSpec",
    &[
        one(1, "replicas", I32),
        one(2, "selector", M(&LABEL_SELECTOR)),
        one(3, "template", M(&POD_TEMPLATE_SPEC)),
        one(4, "minReadySeconds", I32),
    ],
);
static REPLICA_SET_STATUS: Msg = msg(
    "ReplicaSetStatus",
    &[
        one(1, "replicas", I32),
        one(2, "fullyLabeledReplicas", I32),
        one(3, "observedGeneration", I64),
        one(4, "readyReplicas", I32),
        one(5, "availableReplicas", I32),
        list(6, "conditions", M(&REPLICA_SET_CONDITION)),
        one(7, "terminatingReplicas", I32),
    ],
);
static REPLICA_SET_CONDITION: Msg = msg(
    "ReplicaSetCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastTransitionTime", Time),
        one(4, "reason", Str),
        one(5, "message", Str),
    ],
);
static NAMESPACE: Msg = msg(
    "Namespace",
    &[one(1, "metadata", M(&OBJECT_META)), one(2, "spec", M(&NAMESPACE_SPEC)), one(3, "status", M(&NAMESPACE_STATUS))],
);
static NAMESPACE_SPEC: Msg = msg("NamespaceSpec", &[list(1, "finalizers", Str)]);
static NAMESPACE_STATUS: Msg =
    msg("NamespaceStatus", &[one(1, "phase", Str), list(2, "conditions", M(&NAMESPACE_CONDITION))]);
static NAMESPACE_CONDITION: Msg = msg(
    "NamespaceCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str),
        one(6, "message", Str),
    ],
);
static CONFIG_MAP: Msg = msg(
    "ConfigMap",
    &[one(1, "metadata", M(&OBJECT_META)), map(2, "data", Str), map(3, "binaryData", Bytes), one(4, "immutable", Bool)],
);
static SECRET: Msg = msg(
    "Secret",
    &[
        one(1, "metadata", M(&OBJECT_META)),
        map(2, "data", Bytes),
        one(3, "type", Str),
        map(4, "stringData", Str),
        one(5, "immutable", Bool),
    ],
);
static SERVICE: Msg = msg(
    "Service",
    &[one(1, "metadata", M(&OBJECT_META)), one(2, "spec", M(&SERVICE_SPEC)), one(3, "status", M(&SERVICE_STATUS))],
);
static SERVICE_SPEC: Msg = msg(
    "ServiceSpec",
    &[
        list(1, "ports", M(&SERVICE_PORT)),
        map(2, "selector", Str),
        one(3, "clusterIP", Str),
        one(4, "type", Str),
        list(5, "externalIPs", Str),
        one(7, "sessionAffinity", Str),
        one(8, "loadBalancerIP", Str),
        list(9, "loadBalancerSourceRanges", Str),
        one(10, "externalName", Str),
        one(11, "externalTrafficPolicy", Str),
        one(12, "healthCheckNodePort", I32),
        one(13, "publishNotReadyAddresses", Bool),
        one(14, "sessionAffinityConfig", M(&SESSION_AFFINITY_CONFIG)),
        one(17, "ipFamilyPolicy", Str),
        list(18, "clusterIPs", Str),
        list(19, "ipFamilies", Str),
        one(20, "allocateLoadBalancerNodePorts", Bool),
        one(21, "loadBalancerClass", Str),
        one(22, "internalTrafficPolicy", Str),
        one(23, "trafficDistribution", Str),
    ],
);
static SERVICE_PORT: Msg = msg(
    "ServicePort",
    &[
        one(1, "name", Str),
        one(2, "protocol", Str),
        one(3, "port", I32),
        one(4, "targetPort", IntOrString),
        one(5, "nodePort", I32),
        one(6, "appProtocol", Str),
    ],
);
static SESSION_AFFINITY_CONFIG: Msg = msg("SessionAffinityConfig", &[one(1, "clientIP", M(&CLIENT_IP_CONFIG))]);
static CLIENT_IP_CONFIG: Msg = msg("ClientIpConfig", &[one(1, "timeoutSeconds", I32)]);
static SERVICE_STATUS: Msg =
    msg("ServiceStatus", &[one(1, "loadBalancer", M(&LOAD_BALANCER_STATUS)), list(2, "conditions", M(&CONDITION))]);
static LOAD_BALANCER_STATUS: Msg = msg("LoadBalancerStatus", &[list(1, "ingress", M(&LOAD_BALANCER_INGRESS))]);
static LOAD_BALANCER_INGRESS: Msg = msg(
    "LoadBalancerIngress",
    &[one(1, "ip", Str), one(2, "hostname", Str), one(3, "ipMode", Str), list(4, "ports", M(&PORT_STATUS))],
);
static PORT_STATUS: Msg = msg("PortStatus", &[one(1, "port", I32), one(2, "protocol", Str), one(3, "error", Str)]);
static CONDITION: Msg = msg(
    "Condition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "observedGeneration", I64),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str),
        one(6, "message", Str),
    ],
);
static SERVICE_ACCOUNT: Msg = msg(
    "ServiceAccount",
    &[
        one(1, "metadata", M(&OBJECT_META)),
        list(2, "secrets", M(&OBJECT_REFERENCE)),
        list(3, "imagePullSecrets", M(&LOCAL_OBJECT_REFERENCE)),
        one(4, "automountServiceAccountToken", Bool),
    ],
);
static OBJECT_REFERENCE: Msg = msg(
    "ObjectReference",
    &[
        one(1, "kind", Str),
        one(2, "namespace", Str),
        one(3, "name", Str),
        one(4, "uid", Str),
        one(5, "apiVersion", Str),
        one(6, "resourceVersion", Str),
        one(7, "fieldPath", Str),
    ],
);
static POD: Msg =
    msg("Pod", &[one(1, "metadata", M(&OBJECT_META)), one(2, "spec", M(&POD_SPEC)), one(3, "status", M(&POD_STATUS))]);
static POD_STATUS: Msg = msg(
    "PodStatus",
    &[
        one(1, "phase", Str),
        list(2, "conditions", M(&POD_CONDITION)),
        one(3, "message", Str),
        one(4, "reason", Str),
        one(5, "hostIP", Str),
        one(6, "podIP", Str),
        one(7, "startTime", Time),
        list(8, "containerStatuses", M(&CONTAINER_STATUS)),
        one(9, "qosClass", Str),
        list(10, "initContainerStatuses", M(&CONTAINER_STATUS)),
        one(11, "nominatedNodeName", Str),
        list(12, "podIPs", M(&POD_IP)),
        list(13, "ephemeralContainerStatuses", M(&CONTAINER_STATUS)),
        one(14, "resize", Str),
        list(15, "resourceClaimStatuses", M(&POD_RESOURCE_CLAIM_STATUS)),
        list(16, "hostIPs", M(&HOST_IP)),
        one(17, "observedGeneration", I64),
        one(18, "extendedResourceClaimStatus", M(&POD_EXTENDED_RESOURCE_CLAIM_STATUS)),
        map(19, "allocatedResources", Quantity),
        one(20, "resources", M(&RESOURCE_REQUIREMENTS)),
    ],
);
static POD_CONDITION: Msg = msg(
    "PodCondition",
    &[
        one(1, "type", Str),
        one(2, "status", Str),
        one(3, "lastProbeTime", Time),
        one(4, "lastTransitionTime", Time),
        one(5, "reason", Str),
        one(6, "message", Str),
        one(7, "observedGeneration", I64),
    ],
);
static CONTAINER_STATUS: Msg = msg(
    "ContainerStatus",
    &[
        one(1, "name", Str),
        one(2, "state", M(&CONTAINER_STATE)),
        one(3, "lastState", M(&CONTAINER_STATE)),
        one(4, "ready", Bool),
        one(5, "restartCount", I32),
        one(6, "image", Str),
        one(7, "imageID", Str),
        one(8, "containerID", Str),
        one(9, "started", Bool),
        map(10, "allocatedResources", Quantity),
        one(11, "resources", M(&RESOURCE_REQUIREMENTS)),
        list(12, "volumeMounts", M(&VOLUME_MOUNT_STATUS)),
        one(13, "user", M(&CONTAINER_USER)),
        list(14, "allocatedResourcesStatus", M(&RESOURCE_STATUS)),
        one(15, "stopSignal", Str),
    ],
);
static CONTAINER_STATE: Msg = msg(
    "ContainerState",
    &[
        one(1, "waiting", M(&CONTAINER_STATE_WAITING)),
        one(2, "running", M(&CONTAINER_STATE_RUNNING)),
        one(3, "terminated", M(&CONTAINER_STATE_TERMINATED)),
    ],
);
static CONTAINER_STATE_WAITING: Msg = msg("ContainerStateWaiting", &[one(1, "reason", Str), one(2, "message", Str)]);
static CONTAINER_STATE_RUNNING: Msg = msg("ContainerStateRunning", &[one(1, "startedAt", Time)]);
static CONTAINER_STATE_TERMINATED: Msg = msg(
    "ContainerStateTerminated",
    &[
        one(1, "exitCode", I32),
        one(2, "signal", I32),
        one(3, "reason", Str),
        one(4, "message", Str),
        one(5, "startedAt", Time),
        one(6, "finishedAt", Time),
        one(7, "containerID", Str),
    ],
);
static VOLUME_MOUNT_STATUS: Msg = msg(
    "VolumeMountStatus",
    &[one(1, "name", Str), one(2, "mountPath", Str), one(3, "readOnly", Bool), one(4, "recursiveReadOnly", Str)],
);
static CONTAINER_USER: Msg = msg("ContainerUser", &[one(1, "linux", M(&LINUX_CONTAINER_USER))]);
static LINUX_CONTAINER_USER: Msg =
    msg("LinuxContainerUser", &[one(1, "uid", I64), one(2, "gid", I64), list(3, "supplementalGroups", I64)]);
static RESOURCE_STATUS: Msg = msg("ResourceStatus", &[one(1, "name", Str), list(2, "resources", M(&RESOURCE_HEALTH))]);
static RESOURCE_HEALTH: Msg = msg("ResourceHealth", &[one(1, "resourceID", Str), one(2, "health", Str)]);
static POD_IP: Msg = msg("PodIp", &[one(1, "ip", Str)]);
static POD_RESOURCE_CLAIM_STATUS: Msg =
    msg("PodResourceClaimStatus", &[one(1, "name", Str), one(2, "resourceClaimName", Str)]);
static HOST_IP: Msg = msg("HostIp", &[one(1, "ip", Str)]);
static POD_EXTENDED_RESOURCE_CLAIM_STATUS: Msg = msg(
    "PodExtendedResourceClaimStatus",
    &[list(1, "requestMappings", M(&CONTAINER_EXTENDED_RESOURCE_REQUEST)), one(2, "resourceClaimName", Str)],
);
static CONTAINER_EXTENDED_RESOURCE_REQUEST: Msg = msg(
    "ContainerExtendedResourceRequest",
    &[one(1, "containerName", Str), one(2, "resourceName", Str), one(3, "requestName", Str)],
);
static EVENT: Msg = msg(
    "Event",
    &[
        one(1, "metadata", M(&OBJECT_META)),
        one(2, "involvedObject", M(&OBJECT_REFERENCE)),
        one(3, "reason", Str),
        one(4, "message", Str),
        one(5, "source", M(&EVENT_SOURCE)),
        one(6, "firstTimestamp", Time),
        one(7, "lastTimestamp", Time),
        one(8, "count", I32),
        one(9, "type", Str),
        one(10, "eventTime", MicroTime),
        one(11, "series", M(&EVENT_SERIES)),
        one(12, "action", Str),
        one(13, "related", M(&OBJECT_REFERENCE)),
        one(14, "reportingComponent", Str),
        one(15, "reportingInstance", Str),
    ],
);
static EVENT_SOURCE: Msg = msg("EventSource", &[one(1, "component", Str), one(2, "host", Str)]);
static EVENT_SERIES: Msg = msg("EventSeries", &[one(1, "count", I32), one(2, "lastObservedTime", MicroTime)]);
static SELF_SUBJECT_ACCESS_REVIEW: Msg = msg(
    "SelfSubjectAccessReview",
    &[
        one(1, "metadata", M(&OBJECT_META)),
        one(2, "spec", M(&SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
        one(3, "status", M(&SUBJECT_ACCESS_REVIEW_STATUS)),
    ],
);
static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Msg = msg(
    "SelfSubjectAccessReviewSpec",
    &[
        one(1, "resourceAttributes", M(&RESOURCE_ATTRIBUTES)),
        one(2, "nonResourceAttributes", M(&NON_RESOURCE_ATTRIBUTES)),
    ],
);
static RESOURCE_ATTRIBUTES: Msg = msg(
    "ResourceAttributes",
    &[
        one(1, "namespace", Str),
        one(2, "verb", Str),
        one(3, "group", Str),
        one(4, "version", Str),
        one(5, "resource", Str),
        one(6, "subresource", Str),
        one(7, "name", Str),
        one(8, "fieldSelector", M(&FIELD_SELECTOR_ATTRIBUTES)),
        one(9, "labelSelector", M(&LABEL_SELECTOR_ATTRIBUTES)),
    ],
);
static FIELD_SELECTOR_ATTRIBUTES: Msg = msg(
    "FieldSelectorAttributes",
    &[one(1, "rawSelector", Str), list(2, "requirements", M(&FIELD_SELECTOR_REQUIREMENT))],
);
static FIELD_SELECTOR_REQUIREMENT: Msg =
    msg("FieldSelectorRequirement", &[one(1, "key", Str), one(2, "operator", Str), list(3, "values", Str)]);
static LABEL_SELECTOR_ATTRIBUTES: Msg = msg(
    "LabelSelectorAttributes",
    &[one(1, "rawSelector", Str), list(2, "requirements", M(&LABEL_SELECTOR_REQUIREMENT))],
);
static NON_RESOURCE_ATTRIBUTES: Msg = msg("NonResourceAttributes", &[one(1, "path", Str), one(2, "verb", Str)]);
static SUBJECT_ACCESS_REVIEW_STATUS: Msg = msg(
    "SubjectAccessReviewStatus",
    &[one(1, "allowed", Bool), one(2, "reason", Str), one(3, "evaluationError", Str), one(4, "denied", Bool)],
);
static SELF_SUBJECT_RULES_REVIEW: Msg = msg(
    "SelfSubjectRulesReview",
    &[
        one(1, "metadata", M(&OBJECT_META)),
        one(2, "spec", M(&SELF_SUBJECT_RULES_REVIEW_SPEC)),
        one(3, "status", M(&SUBJECT_RULES_REVIEW_STATUS)),
    ],
);
static SELF_SUBJECT_REVIEW: Msg =
    msg("SelfSubjectReview", &[one(1, "metadata", M(&OBJECT_META)), one(2, "status", M(&SELF_SUBJECT_REVIEW_STATUS))]);
static TOKEN_REQUEST: Msg = msg(
    "TokenRequest",
    &[
        one(1, "metadata", M(&OBJECT_META)),
        one(2, "spec", M(&TOKEN_REQUEST_SPEC)),
        one(3, "status", M(&TOKEN_REQUEST_STATUS)),
    ],
);
static TOKEN_REQUEST_SPEC: Msg = msg(
    "TokenRequestSpec",
    &[
        list(1, "audiences", Str),
        one(3, "boundObjectRef", M(&BOUND_OBJECT_REFERENCE)),
        one(4, "expirationSeconds", I64),
    ],
);
static BOUND_OBJECT_REFERENCE: Msg = msg(
    "BoundObjectReference",
    &[one(1, "kind", Str), one(2, "apiVersion", Str), one(3, "name", Str), one(4, "uid", Str)],
);
static TOKEN_REQUEST_STATUS: Msg =
    msg("TokenRequestStatus", &[one(1, "token", Str), one(2, "expirationTimestamp", Time)]);
static SELF_SUBJECT_REVIEW_STATUS: Msg = msg("SelfSubjectReviewStatus", &[one(1, "userInfo", M(&USER_INFO))]);
// `extra` (field 4, a map of string lists) is left out: clients never send it in a review request.
static USER_INFO: Msg = msg("UserInfo", &[one(1, "username", Str), one(2, "uid", Str), list(3, "groups", Str)]);
static SELF_SUBJECT_RULES_REVIEW_SPEC: Msg = msg("SelfSubjectRulesReviewSpec", &[one(1, "namespace", Str)]);
static SUBJECT_RULES_REVIEW_STATUS: Msg = msg(
    "SubjectRulesReviewStatus",
    &[
        list(1, "resourceRules", M(&RESOURCE_RULE)),
        list(2, "nonResourceRules", M(&NON_RESOURCE_RULE)),
        one(3, "incomplete", Bool),
        one(4, "evaluationError", Str),
    ],
);
static RESOURCE_RULE: Msg = msg(
    "ResourceRule",
    &[list(1, "verbs", Str), list(2, "apiGroups", Str), list(3, "resources", Str), list(4, "resourceNames", Str)],
);
static NON_RESOURCE_RULE: Msg = msg("NonResourceRule", &[list(1, "verbs", Str), list(2, "nonResourceURLs", Str)]);
static LEASE: Msg = msg("Lease", &[one(1, "metadata", M(&OBJECT_META)), one(2, "spec", M(&LEASE_SPEC))]);
static LEASE_SPEC: Msg = msg(
    "LeaseSpec",
    &[
        one(1, "holderIdentity", Str),
        one(2, "leaseDurationSeconds", I32),
        one(3, "acquireTime", MicroTime),
        one(4, "renewTime", MicroTime),
        one(5, "leaseTransitions", I32),
        one(6, "strategy", Str),
        one(7, "preferredHolder", Str),
    ],
);
static ROLE: Msg = msg("Role", &[one(1, "metadata", M(&OBJECT_META)), list(2, "rules", M(&POLICY_RULE))]);
static POLICY_RULE: Msg = msg(
    "PolicyRule",
    &[
        list(1, "verbs", Str),
        list(2, "apiGroups", Str),
        list(3, "resources", Str),
        list(4, "resourceNames", Str),
        list(5, "nonResourceURLs", Str),
    ],
);
static CLUSTER_ROLE: Msg = msg(
    "ClusterRole",
    &[
        one(1, "metadata", M(&OBJECT_META)),
        list(2, "rules", M(&POLICY_RULE)),
        one(3, "aggregationRule", M(&AGGREGATION_RULE)),
    ],
);
static AGGREGATION_RULE: Msg = msg("AggregationRule", &[list(1, "clusterRoleSelectors", M(&LABEL_SELECTOR))]);
static ROLE_BINDING: Msg = msg(
    "RoleBinding",
    &[one(1, "metadata", M(&OBJECT_META)), list(2, "subjects", M(&SUBJECT)), one(3, "roleRef", M(&ROLE_REF))],
);
static SUBJECT: Msg =
    msg("Subject", &[one(1, "kind", Str), one(2, "apiGroup", Str), one(3, "name", Str), one(4, "namespace", Str)]);
static ROLE_REF: Msg = msg("RoleRef", &[one(1, "apiGroup", Str), one(2, "kind", Str), one(3, "name", Str)]);
static CLUSTER_ROLE_BINDING: Msg = msg(
    "ClusterRoleBinding",
    &[one(1, "metadata", M(&OBJECT_META)), list(2, "subjects", M(&SUBJECT)), one(3, "roleRef", M(&ROLE_REF))],
);

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity as PbQuantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString as PbIntOrString;
    use prost::Message as _;
    use serde_json::json;
    use std::collections::{BTreeMap, HashSet};

    /// Frames a prost-encoded object the way Go clients do, independently of `encode`.
    fn frame(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
            raw: Some(object.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC.as_slice(), &unknown.encode_to_vec()].concat()
    }

    /// Unframes an `encode` result with prost, checking the envelope on the way.
    fn unframe<T: prost::Message + Default>(body: &[u8], api_version: &str, kind: &str) -> T {
        let unknown = Unknown::decode(body.strip_prefix(MAGIC.as_slice()).expect("magic")).expect("envelope");
        let type_meta = unknown.type_meta.expect("typeMeta");
        assert_eq!(type_meta.api_version.as_deref(), Some(api_version));
        assert_eq!(type_meta.kind.as_deref(), Some(kind));
        T::decode(unknown.raw.expect("raw").as_slice()).expect("object")
    }

    /// Frames hand-written raw bytes, so tests can send what `encode` never would.
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        put_len(&mut type_meta, 1, api_version.as_bytes());
        put_len(&mut type_meta, 2, kind.as_bytes());
        let mut body = MAGIC.to_vec();
        put_len(&mut body, 1, &type_meta);
        put_len(&mut body, 2, raw);
        body
    }

    fn s(text: &str) -> Option<String> {
        Some(text.into())
    }

    fn quantity(text: &str) -> PbQuantity {
        PbQuantity { string: s(text) }
    }

    fn container(name: &str, image: &str, port: i32) -> core::Container {
        core::Container {
            name: s(name),
            image: s(image),
            ports: vec![core::ContainerPort {
                name: s("http"),
                container_port: Some(port),
                protocol: s("TCP"),
                ..Default::default()
            }],
            resources: Some(core::ResourceRequirements {
                limits: BTreeMap::from([("cpu".into(), quantity("500m")), ("memory".into(), quantity("128Mi"))]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn deployment() -> apps::Deployment {
        let mut web = container("web", "nginx:1.27", 80);
        web.env = vec![
            core::EnvVar { name: s("MODE"), value: s("prod"), value_from: None },
            core::EnvVar {
                name: s("PASSWORD"),
                value: None,
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        local_object_reference: Some(core::LocalObjectReference { name: s("db") }),
                        key: s("password"),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
        ];
        web.readiness_probe = Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: Some(PbIntOrString { r#type: Some(1), int_val: Some(0), str_val: s("http") }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(10),
            ..Default::default()
        });
        web.volume_mounts =
            vec![core::VolumeMount { name: s("config"), mount_path: s("/etc/web"), ..Default::default() }];
        web.security_context = Some(core::SecurityContext {
            run_as_non_root: Some(true),
            capabilities: Some(core::Capabilities { drop: vec!["ALL".into()], add: vec![] }),
            ..Default::default()
        });
        let mut sidecar = container("log", "busybox", 9000);
        sidecar.command = vec!["sh".into(), "-c".into(), "tail -f /dev/null".into()];
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                name: s("web"),
                namespace: s(""),
                labels: labels.clone(),
                creation_timestamp: Some(meta::Time { seconds: Some(1_704_164_645), nanos: Some(0) }),
                managed_fields: vec![meta::ManagedFieldsEntry {
                    manager: s("kubectl-create"),
                    operation: s("Update"),
                    fields_v1: Some(meta::FieldsV1 { raw: Some(br#"{"f:spec":{}}"#.to_vec()) }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(3),
                selector: Some(meta::LabelSelector { match_labels: labels.clone(), match_expressions: vec![] }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        labels,
                        creation_timestamp: Some(meta::Time::default()),
                        ..Default::default()
                    }),
                    spec: Some(core::PodSpec {
                        containers: vec![web, sidecar],
                        volumes: vec![core::Volume {
                            name: s("config"),
                            volume_source: Some(core::VolumeSource {
                                config_map: Some(core::ConfigMapVolumeSource {
                                    local_object_reference: Some(core::LocalObjectReference { name: s("web-config") }),
                                    default_mode: Some(0o644),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                        }],
                        tolerations: vec![core::Toleration {
                            key: s("node.kubernetes.io/not-ready"),
                            operator: s("Exists"),
                            effect: s("NoExecute"),
                            toleration_seconds: Some(300),
                            ..Default::default()
                        }],
                        restart_policy: s(""),
                        security_context: Some(core::PodSecurityContext {
                            supplemental_groups: vec![1000, 2000],
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_unavailable: Some(PbIntOrString { r#type: Some(0), int_val: Some(1), str_val: s("") }),
                        max_surge: Some(PbIntOrString { r#type: Some(1), int_val: Some(0), str_val: s("25%") }),
                    }),
                }),
                min_ready_seconds: Some(0),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(3),
                conditions: vec![apps::DeploymentCondition {
                    r#type: s("Available"),
                    status: s("True"),
                    last_update_time: Some(meta::Time { seconds: Some(0), nanos: Some(0) }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn deployment_json() -> Value {
        let limits = json!({"cpu": "500m", "memory": "128Mi"});
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "",
                "labels": {"app": "web"},
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "managedFields": [{"manager": "kubectl-create", "operation": "Update", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "nginx:1.27",
                                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                                "env": [
                                    {"name": "MODE", "value": "prod"},
                                    {
                                        "name": "PASSWORD",
                                        "valueFrom": {
                                            "secretKeyRef": {"name": "db", "key": "password", "optional": false}
                                        }
                                    }
                                ],
                                "resources": {"limits": limits},
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}],
                                "securityContext": {"runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
                            },
                            {
                                "name": "log",
                                "image": "busybox",
                                "command": ["sh", "-c", "tail -f /dev/null"],
                                "ports": [{"name": "http", "containerPort": 9000, "protocol": "TCP"}],
                                "resources": {"limits": limits},
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}}],
                        "tolerations": [{
                            "key": "node.kubernetes.io/not-ready",
                            "operator": "Exists",
                            "effect": "NoExecute",
                            "tolerationSeconds": 300
                        }],
                        "restartPolicy": "",
                        "securityContext": {"supplementalGroups": [1000, 2000]},
                    }
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
                "minReadySeconds": 0,
            },
            "status": {
                "observedGeneration": 2,
                "replicas": 3,
                "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "1970-01-01T00:00:00Z"}],
            }
        })
    }

    #[test]
    fn deployment_decodes_to_its_json_form() {
        let body = frame("apps/v1", "Deployment", &deployment());
        assert_eq!(decode(&body).expect("decode"), deployment_json());
    }

    #[test]
    fn deployment_encodes_to_what_prost_reads_back() {
        let body = encode(&deployment_json()).expect("encode");
        let decoded: apps::Deployment = unframe(&body, "apps/v1", "Deployment");
        assert_eq!(decoded, deployment());
        assert_eq!(decode(&body).expect("decode"), deployment_json());
    }

    #[test]
    fn namespace_as_kubectl_create_namespace_sends_it() {
        let type_meta = [b"\x0a\x02v1".as_slice(), b"\x12\x09Namespace"].concat();
        // metadata{name "demo", creationTimestamp (zero: empty message)}, spec{}, status{}.
        let raw = [b"\x0a\x08\x0a\x04demo\x42\x00".as_slice(), b"\x12\x00", b"\x1a\x00"].concat();
        let body = [
            b"k8s\0".as_slice(),
            &[0x0a, type_meta.len() as u8],
            &type_meta,
            &[0x12, raw.len() as u8],
            &raw,
            b"\x1a\x00\x22\x00",
        ]
        .concat();
        let expected = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "demo", "creationTimestamp": null},
            "spec": {},
            "status": {},
        });
        assert_eq!(decode(&body).expect("decode"), expected);
        assert_eq!(decode(&encode(&expected).expect("encode")).expect("round trip"), expected);
    }

    #[test]
    fn secret_binary_data_is_base64() {
        let secret = core::Secret {
            metadata: Some(meta::ObjectMeta { name: s("creds"), ..Default::default() }),
            data: BTreeMap::from([("key".into(), vec![0x00, 0x9f, 0x92, 0x96, 0xff]), ("empty".into(), vec![])]),
            string_data: BTreeMap::from([("user".into(), "admin".into())]),
            r#type: s("Opaque"),
            immutable: Some(true),
        };
        let expected = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"key": "AJ+Slv8=", "empty": ""},
            "stringData": {"user": "admin"},
            "type": "Opaque",
            "immutable": true,
        });
        assert_eq!(decode(&frame("v1", "Secret", &secret)).expect("decode"), expected);
        assert_eq!(unframe::<core::Secret>(&encode(&expected).expect("encode"), "v1", "Secret"), secret);
        // Unpadded base64 is accepted too.
        let unpadded = json!({"apiVersion": "v1", "kind": "Secret", "data": {"key": "AJ+Slv8"}});
        let decoded: core::Secret = unframe(&encode(&unpadded).expect("encode"), "v1", "Secret");
        assert_eq!(decoded.data["key"], vec![0x00, 0x9f, 0x92, 0x96, 0xff]);
    }

    #[test]
    fn config_map_binary_data_and_absent_map_values() {
        let expected = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default"},
            "data": {"a": "1", "b": ""},
            "binaryData": {"bin": "AQID"},
        });
        let body = encode(&expected).expect("encode");
        let decoded: core::ConfigMap = unframe(&body, "v1", "ConfigMap");
        assert_eq!(decoded.binary_data["bin"], vec![1, 2, 3]);
        assert_eq!(decode(&body).expect("decode"), expected);
        // A map entry with no value field is the zero value.
        let body = envelope("v1", "ConfigMap", b"\x12\x03\x0a\x01k");
        assert_eq!(decode(&body).expect("decode"), json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": ""}}));
    }

    #[test]
    fn self_subject_access_review_with_resource_attributes() {
        use k8s_pb::api::authorization::v1 as authz;
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": null},
            "spec": {
                "resourceAttributes": {
                    "namespace": "default",
                    "verb": "create",
                    "group": "apps",
                    "resource": "deployments",
                    "subresource": "scale",
                    "fieldSelector": {"requirements": [{"key": "spec.nodeName", "operator": "In", "values": ["n1"]}]},
                    "labelSelector": {"rawSelector": "app=web"},
                }
            },
            "status": {"allowed": false},
        });
        let body = encode(&review).expect("encode");
        let decoded: authz::SelfSubjectAccessReview =
            unframe(&body, "authorization.k8s.io/v1", "SelfSubjectAccessReview");
        let attributes = decoded.spec.and_then(|spec| spec.resource_attributes).expect("resourceAttributes");
        assert_eq!(attributes.verb.as_deref(), Some("create"));
        assert_eq!(attributes.subresource.as_deref(), Some("scale"));
        let requirement = &attributes.field_selector.expect("fieldSelector").requirements[0];
        assert_eq!(requirement.values, vec!["n1".to_string()]);
        assert_eq!(attributes.label_selector.and_then(|l| l.raw_selector).as_deref(), Some("app=web"));
        assert_eq!(decoded.status.and_then(|s| s.allowed), Some(false));
        assert_eq!(decode(&body).expect("decode"), review);
    }

    #[test]
    fn self_subject_access_review_with_non_resource_attributes() {
        use k8s_pb::api::authorization::v1 as authz;
        let review = authz::SelfSubjectAccessReview {
            metadata: Some(meta::ObjectMeta { creation_timestamp: Some(meta::Time::default()), ..Default::default() }),
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: None,
                non_resource_attributes: Some(authz::NonResourceAttributes { path: s("/healthz"), verb: s("get") }),
            }),
            status: Some(authz::SubjectAccessReviewStatus {
                allowed: Some(false),
                denied: Some(false),
                reason: s(""),
                evaluation_error: s(""),
            }),
        };
        let expected = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": null},
            "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
            "status": {"allowed": false, "denied": false, "reason": "", "evaluationError": ""},
        });
        assert_eq!(decode(&frame("authorization.k8s.io/v1", "SelfSubjectAccessReview", &review)).expect("x"), expected);
    }

    #[test]
    fn self_subject_rules_review_round_trips() {
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "metadata": {"creationTimestamp": null},
            "spec": {"namespace": "default"},
            "status": {
                "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api"]}],
                "incomplete": false,
            },
        });
        assert_eq!(decode(&encode(&review).expect("encode")).expect("decode"), review);
    }

    #[test]
    fn lease_micro_times_keep_six_digits() {
        use k8s_pb::api::coordination::v1 as coordination;
        let lease = coordination::Lease {
            metadata: Some(meta::ObjectMeta { name: s("leader"), ..Default::default() }),
            spec: Some(coordination::LeaseSpec {
                holder_identity: s("node-1"),
                lease_duration_seconds: Some(15),
                acquire_time: Some(meta::MicroTime { seconds: Some(1_704_164_645), nanos: Some(123_456_789) }),
                renew_time: Some(meta::MicroTime { seconds: Some(1_704_164_645), nanos: Some(0) }),
                lease_transitions: Some(2),
                ..Default::default()
            }),
        };
        let expected = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "leader"},
            "spec": {
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 15,
                "acquireTime": "2024-01-02T03:04:05.123456Z",
                "renewTime": "2024-01-02T03:04:05.000000Z",
                "leaseTransitions": 2,
            }
        });
        assert_eq!(decode(&frame("coordination.k8s.io/v1", "Lease", &lease)).expect("decode"), expected);
        let back: coordination::Lease = unframe(&encode(&expected).expect("encode"), "coordination.k8s.io/v1", "Lease");
        let spec = back.spec.expect("spec");
        // The JSON form only keeps microseconds.
        assert_eq!(spec.acquire_time, Some(meta::MicroTime { seconds: Some(1_704_164_645), nanos: Some(123_456_000) }));
    }

    #[test]
    fn times_truncate_and_handle_negative_seconds() {
        assert_eq!(format_time(1_500_000_000, false).as_deref(), Some("1970-01-01T00:00:01Z"));
        assert_eq!(format_time(-1, true).as_deref(), Some("1969-12-31T23:59:59.999999Z"));
        assert_eq!(format_time(-1, false).as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(format_time(i128::from(i64::MAX) * NANOS_PER_SECOND, false), None);
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Started",
            "firstTimestamp": "1969-07-20T20:17:40Z",
            "eventTime": "2024-01-02T03:04:05.500000Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-02T03:04:06.000001Z"},
            "count": 1,
        });
        assert_eq!(decode(&encode(&event).expect("encode")).expect("decode"), event);
        for bad in ["yesterday", "2024-01-02T03:04:05", "-0001-01-01T00:00:00Z"] {
            let event = json!({"apiVersion": "v1", "kind": "Event", "firstTimestamp": bad});
            let expected = ProtobufError::InvalidTimestamp { message: "Event", field: "firstTimestamp" };
            assert_eq!(encode(&event), Err(expected), "{bad}");
        }
    }

    #[test]
    fn service_ports_with_int_or_string_target_ports() {
        let service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "https", "port": 443, "targetPort": "https", "nodePort": 0},
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP",
                "clusterIPs": ["10.0.0.1"],
                "ipFamilies": ["IPv4"],
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            },
            "status": {"loadBalancer": {}},
        });
        let body = encode(&service).expect("encode");
        let decoded: core::Service = unframe(&body, "v1", "Service");
        let ports = decoded.spec.expect("spec").ports;
        assert_eq!(ports[0].target_port, Some(PbIntOrString { r#type: Some(0), int_val: Some(8080), str_val: s("") }));
        assert_eq!(ports[1].target_port.as_ref().and_then(|p| p.str_val.as_deref()), Some("https"));
        assert_eq!(decode(&body).expect("decode"), service);
    }

    #[test]
    fn pod_and_other_kinds_round_trip() {
        let objects = [
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "p",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}],
                    "deletionGracePeriodSeconds": 30,
                },
                "spec": {
                    "containers": [{"name": "c", "image": "i", "livenessProbe": {"tcpSocket": {"port": 8080}}}],
                    "ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "c"}],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
                    }}},
                    "volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "s", "items": [{"key": "k", "path": "p"}]}}]}}],
                    "overhead": {"cpu": "10m"},
                },
                "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.5"}], "startTime": "2024-01-02T03:04:05Z",
                    "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                        "state": {"running": {"startedAt": "2024-01-02T03:04:06Z"}}}]},
            }),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
                "spec": {"replicas": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}},
                "status": {"replicas": 1, "fullyLabeledReplicas": 1}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
                "secrets": [{"name": "t"}], "imagePullSecrets": [{"name": "r"}], "automountServiceAccountToken": false}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"},
                "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"},
                "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}),
        ];
        for object in objects {
            assert_eq!(decode(&encode(&object).expect("encode")).expect("decode"), object);
        }
    }

    #[test]
    fn negative_int32_travels_sign_extended() {
        let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": -1}});
        let body = encode(&object).expect("encode");
        let decoded: apps::Deployment = unframe(&body, "apps/v1", "Deployment");
        assert_eq!(decoded.spec.and_then(|s| s.replicas), Some(-1));
        assert_eq!(decode(&body).expect("decode"), object);
    }

    #[test]
    fn packed_repeated_scalars_are_accepted() {
        // PodSecurityContext.supplementalGroups (4) packed as one length-delimited run.
        let security = b"\x22\x03\x01\x02\x03";
        let pod_spec = [b"\x72\x05".as_slice(), security].concat();
        let body = envelope("v1", "Pod", &[b"\x12\x07".as_slice(), &pod_spec].concat());
        let expected =
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"securityContext": {"supplementalGroups": [1, 2, 3]}}});
        assert_eq!(decode(&body).expect("decode"), expected);
    }

    #[test]
    fn unknown_fields_are_skipped_and_repeated_messages_merge() {
        // Namespace with metadata{name "a", field 99 varint}, then metadata{uid "u"}, then field 50 (fixed64).
        let raw = b"\x0a\x06\x0a\x01a\x98\x06\x07\x0a\x03\x2a\x01u\x91\x03\x00\x00\x00\x00\x00\x00\x00\x00";
        let body = envelope("v1", "Namespace", raw);
        let expected = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "uid": "u"}});
        assert_eq!(decode(&body).expect("decode"), expected);
    }

    #[test]
    fn garbage_is_an_error() {
        let namespace = encode(&json!({"apiVersion": "v1", "kind": "Namespace"})).expect("encode");
        assert_eq!(decode(b"{\"kind\":\"Namespace\"}"), Err(ProtobufError::MissingMagic));
        assert_eq!(decode(b"k8s"), Err(ProtobufError::MissingMagic));
        assert_eq!(decode(b"k8s\0\x0a\xff"), Err(ProtobufError::Truncated));
        assert_eq!(decode(b"k8s\0\x0a\x05\x0a"), Err(ProtobufError::Truncated));
        assert_eq!(decode(b"k8s\0\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), Err(ProtobufError::VarintOverflow));
        assert_eq!(decode(b"k8s\0\x00"), Err(ProtobufError::InvalidKey(0)));
        assert_eq!(decode(b"k8s\0\x0b"), Err(ProtobufError::InvalidKey(0x0b)));
        assert_eq!(
            decode(b"k8s\0\x08\x01"),
            Err(ProtobufError::WrongWireType { message: "Unknown", field: "typeMeta", got: 0, expected: 2 })
        );
        assert_eq!(decode(b"k8s\0"), Err(ProtobufError::MissingTypeMeta));
        assert_eq!(
            decode(b"k8s\0\x0a\x0d\x0a\x08batch/v1\x12\x01J"),
            Err(ProtobufError::UnsupportedKind { api_version: "batch/v1".into(), kind: "J".into() })
        );
        assert_eq!(
            decode(&[namespace.as_slice(), b"\x1a\x04gzip"].concat()),
            Err(ProtobufError::UnsupportedContentEncoding("gzip".into()))
        );
        // Namespace metadata.name (a string) sent as a varint.
        let body = envelope("v1", "Namespace", b"\x0a\x02\x08\x01");
        assert_eq!(
            decode(&body),
            Err(ProtobufError::WrongWireType { message: "ObjectMeta", field: "name", got: 0, expected: 2 })
        );
        // Namespace metadata.name that is not UTF-8.
        let body = envelope("v1", "Namespace", b"\x0a\x03\x0a\x01\xff");
        assert_eq!(decode(&body), Err(ProtobufError::InvalidUtf8 { message: "ObjectMeta", field: "name" }));
        // Service port targetPort whose IntOrString type is 7.
        let body = envelope("v1", "Service", b"\x12\x06\x0a\x04\x22\x02\x08\x07");
        assert_eq!(
            decode(&body),
            Err(ProtobufError::InvalidIntOrString { message: "ServicePort", field: "targetPort", kind: 7 })
        );
    }

    #[test]
    fn mangled_bodies_never_panic() {
        let body = frame("apps/v1", "Deployment", &deployment());
        for cut in 0..body.len() {
            let _ = decode(&body[..cut]);
        }
        // A fixed-seed xorshift flips bytes all over the body.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut mangled = body.clone();
            for _ in 0..1 + next() % 4 {
                let at = 4 + (next() as usize) % (mangled.len() - 4);
                mangled[at] = next() as u8;
            }
            let _ = decode(&mangled);
        }
        for _ in 0..3000 {
            let noise: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
            let _ = decode(&[MAGIC.as_slice(), &noise].concat());
        }
    }

    #[test]
    fn encode_refuses_what_it_cannot_carry() {
        assert_eq!(encode(&json!([])), Err(ProtobufError::NotAnObject));
        assert_eq!(encode(&json!({"kind": "Pod"})), Err(ProtobufError::MissingTypeMeta));
        assert_eq!(
            encode(&json!({"apiVersion": "batch/v1", "kind": "Job"})),
            Err(ProtobufError::UnsupportedKind { api_version: "batch/v1".into(), kind: "Job".into() })
        );
        let unknown = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "nmae": "x"}]}});
        assert_eq!(
            encode(&unknown),
            Err(ProtobufError::UnknownJsonField { message: "Container", field: "nmae".into() })
        );
        let too_big = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 1_u64 << 31}});
        assert_eq!(
            encode(&too_big),
            Err(ProtobufError::JsonType { message: "DeploymentSpec", field: "replicas", expected: "a 32-bit integer" })
        );
        let not_list = json!({"apiVersion": "v1", "kind": "Namespace", "spec": {"finalizers": "kubernetes"}});
        assert_eq!(
            encode(&not_list),
            Err(ProtobufError::JsonType { message: "NamespaceSpec", field: "finalizers", expected: "an array" })
        );
        let bad_base64 = json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!"}});
        assert_eq!(encode(&bad_base64), Err(ProtobufError::InvalidBase64 { message: "Secret", field: "data" }));
        // Nulls mean unset and are dropped, even for keys the table does not know.
        let nulls = json!({"apiVersion": "v1", "kind": "Namespace", "spec": null, "extra": null});
        assert_eq!(
            decode(&encode(&nulls).expect("encode")).expect("decode"),
            json!({"apiVersion": "v1", "kind": "Namespace"})
        );
    }

    #[test]
    fn supported_kinds() {
        assert!(is_supported("apps/v1", "Deployment"));
        assert!(is_supported("authorization.k8s.io/v1", "SelfSubjectRulesReview"));
        assert!(!is_supported("batch/v1", "Job"));
        assert!(!is_supported("v1", "Deployment"));
    }

    /// Every message reachable from the kinds has distinct field numbers and JSON keys (inlined
    /// keys included), or one field would shadow another.
    #[test]
    fn table_has_no_duplicate_numbers_or_keys() {
        fn keys(msg: &'static Msg, out: &mut Vec<&'static str>) {
            for field in msg.fields {
                match (field.shape, field.ty) {
                    (Shape::Inline, Ty::M(inner)) => keys(inner, out),
                    _ => out.push(field.json),
                }
            }
        }
        fn visit(msg: &'static Msg, seen: &mut HashSet<*const Msg>) {
            if !seen.insert(msg) {
                return;
            }
            let tags: HashSet<u32> = msg.fields.iter().map(|f| f.tag).collect();
            assert_eq!(tags.len(), msg.fields.len(), "duplicate field number in {}", msg.name);
            let mut names = Vec::new();
            keys(msg, &mut names);
            let unique: HashSet<_> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "duplicate JSON key in {}", msg.name);
            assert!(names.iter().all(|n| !n.is_empty()), "empty JSON key in {}", msg.name);
            for field in msg.fields {
                if let Ty::M(inner) = field.ty {
                    visit(inner, seen);
                }
            }
        }
        let mut seen = HashSet::new();
        for (_, _, msg) in ROOTS {
            visit(msg, &mut seen);
        }
        assert!(seen.len() > 150, "only {} messages reachable", seen.len());
    }
}
