//! Server-side apply and the `metadata.managedFields` bookkeeping of every write.
//!
//! Every field of an object is owned by zero or more *field managers*. A manager's fields are kept as
//! a set of paths, stored in `metadata.managedFields` in the FieldsV1 encoding: a JSON tree keyed by
//! path elements (`f:<field>`, `k:<key fields as JSON>` for elements of map-lists, `v:<JSON value>`
//! for elements of sets, `i:<index>`), where `.` marks a node that is itself a member and not only a
//! prefix of members. The tree is held here as `FieldSet`, a trie over those encoded elements, so
//! that sets read from storage are written back byte-for-byte.
//!
//! Which parts of an object are separate fields comes from the kind's OpenAPI v3 schema: structs and
//! maps are walked field by field, `x-kubernetes-list-type: map` lists element by element, `set`
//! lists value by value; scalars, atomic lists and atomic maps are single fields. Values the schema
//! does not describe are treated the way upstream treats untyped data: objects are granular, lists
//! atomic.
//!
//! Two kinds of writes are recorded:
//!
//! - [`server_side_apply`]: the manager declares the fields it wants; they are merged into the live
//!   object, its fields from the previous apply that it now omits are removed unless someone else
//!   owns them, and changing a value someone else owns is a [`Conflict`] unless forced.
//! - [`record_update`]: any other write; the manager takes over what it changed.
//!
//! Only the JSON shapes are handled here; decoding YAML, defaulting, validation and the 409 Status
//! are the server's business.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde_json::{json, Map, Value};

/// Manager that receives the existing fields of an object applied to for the first time without any
/// managedFields, so that the applier conflicts with whatever wrote them instead of silently taking
/// them over.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Metadata fields the server sets; nobody can own them.
const UNTRACKED_METADATA: [&str; 9] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
];

/// Guards `$ref` chains against cycles in a malformed document.
const MAX_REF_DEPTH: usize = 32;

/// What a manager's write did, for the managedFields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A server-side apply: the manager declared the fields it wants to own.
    Apply,
    /// Any other write (create, update, patch): the manager owns what it changed.
    Update,
}

impl Operation {
    /// The wire name used in `managedFields[].operation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "Apply" => Some(Operation::Apply),
            "Update" => Some(Operation::Update),
            _ => None,
        }
    }
}

/// A field an apply wanted to change while another manager owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager owning the field.
    pub manager: String,
    /// The field, e.g. `.spec.replicas` or `.spec.containers[name="nginx"].image`.
    pub field: String,
    /// `conflict with "MANAGER" using API_VERSION: FIELD` (no `using` part when the owner applied it).
    pub message: String,
}

impl Conflict {
    /// The message without the field, as upstream puts it in a `FieldManagerConflict` cause of the
    /// Status (whose `field` carries the path).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.owner_label())
    }

    fn owner_label(&self) -> String {
        self.message
            .strip_prefix("conflict with ")
            .and_then(|rest| rest.strip_suffix(self.field.as_str()))
            .and_then(|rest| rest.strip_suffix(": "))
            .map_or_else(|| Value::from(self.manager.as_str()).to_string(), str::to_owned)
    }
}

/// Why a server-side apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields the apply would change are owned by other managers (HTTP 409 unless forced).
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration cannot be applied: not an object, a map-list element without its
    /// key, duplicate keys, a value of the wrong shape, `managedFields` set, no manager (HTTP 400).
    #[error("invalid apply configuration: {0}")]
    Invalid(String),
    /// The live object's `metadata.managedFields` cannot be decoded.
    #[error("invalid metadata.managedFields on the live object: {0}")]
    ManagedFields(String),
}

/// The message of the 409 Status for `conflicts`, in upstream's wording: one conflict on one line,
/// several grouped by manager with one `- FIELD` line each.
pub fn conflicts_message(conflicts: &[Conflict]) -> String {
    let count = conflicts.len();
    let plural = if count == 1 { "" } else { "s" };
    let body = match conflicts {
        [only] => only.message.clone(),
        _ => grouped_conflicts(conflicts),
    };
    format!("Apply failed with {count} conflict{plural}: {body}")
}

fn grouped_conflicts(conflicts: &[Conflict]) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for conflict in conflicts {
        let label = conflict.owner_label();
        match groups.iter_mut().find(|(existing, _)| *existing == label) {
            Some((_, fields)) => fields.push(&conflict.field),
            None => groups.push((label, vec![&conflict.field])),
        }
    }
    let mut lines = Vec::new();
    for (label, fields) in groups {
        lines.push(format!("conflicts with {label}:"));
        lines.extend(fields.into_iter().map(|field| format!("- {field}")));
    }
    lines.join("\n")
}

/// Server-side apply of `applied` (the user's intent, already parsed to JSON) by `manager` onto
/// `live` (None = create). Returns the new object with `metadata.managedFields` updated. `now` is the
/// RFC 3339 timestamp for the entry.
///
/// `schemas` is the `components.schemas` map of an OpenAPI v3 document and `root` the name of the
/// kind's schema in it. With `force`, conflicting fields are taken over instead of refused.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schemas: &Map<String, Value>,
    root: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    check_apply_request(applied, manager)?;
    let schemas = Schemas::new(schemas);
    let root = schemas.defs.get(root);
    let applied_nodes = schemas.flatten(applied, root);
    if !applied_nodes.errors.is_empty() {
        return Err(ApplyError::Invalid(applied_nodes.errors.join("; ")));
    }
    let intent = member_set(&applied_nodes.nodes, Scope::Main);
    let Some(live) = live else {
        let mut created = strip_nulls(applied);
        let entry = Entry::new(manager, Operation::Apply, None, api_version_of(applied), now, intent);
        let entries = if entry.fields.is_empty() { Vec::new() } else { vec![entry] };
        write_entries(&mut created, &entries);
        return Ok(created);
    };

    let mut entries = read_entries(live).map_err(ApplyError::ManagedFields)?;
    let mut live_body = live.clone();
    remove_managed_fields(&mut live_body);
    let live_nodes = schemas.flatten(&live_body, root);
    if entries.is_empty() {
        let existing = member_set(&live_nodes.nodes, Scope::Main);
        entries.push(Entry::new(BEFORE_FIRST_APPLY, Operation::Update, None, api_version_of(live), now, existing));
    }
    let own = entries.iter().position(|entry| entry.is(manager, Operation::Apply, None));

    let conflicts = find_conflicts(&intent, &applied_nodes.nodes, &live_nodes.nodes, &entries, own);
    if !conflicts.is_empty() {
        if !force {
            return Err(ApplyError::Conflicts(describe_conflicts(&entries, &conflicts)));
        }
        for (index, path) in &conflicts {
            entries[*index].fields.remove(path);
        }
    }

    let mut merged = schemas.merge(&live_body, applied, root);
    restore_server_owned(&mut merged, &live_body);
    let previous = own.map(|index| entries[index].fields.clone()).unwrap_or_default();
    let mut dropped = previous.clone();
    dropped.subtract(&intent);
    if !dropped.is_empty() {
        let mut kept = intent.clone();
        for (index, entry) in entries.iter().enumerate() {
            if Some(index) != own {
                kept.union_with(&entry.fields);
            }
        }
        schemas.prune(&mut merged, root, &dropped, Some(&kept), &[]);
    }

    let changed = own.is_none() || merged != live_body || previous != intent;
    let version = api_version_of(&merged);
    match own {
        Some(index) => entries[index].refresh(intent, version, now, changed),
        None => entries.push(Entry::new(manager, Operation::Apply, None, version, now, intent)),
    }
    for (index, entry) in entries.iter_mut().enumerate() {
        // The applier keeps what it declared even where that is absent (an applied null).
        if own != Some(index) {
            schemas.retain_existing(&mut entry.fields, &merged, root);
        }
    }
    entries.retain(|entry| !entry.fields.is_empty());
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// Records a non-apply write (create/update/patch) by `manager`: fields whose value changed (or were
/// added) between `old` and `new` move to `manager`'s Update entry and are removed from other
/// managers' sets. `subresource` is e.g. Some("status").
///
/// `old`'s managedFields are the record; whatever `new` carries is replaced, except that an explicit
/// empty list resets all ownership (upstream's way to clear managedFields). Undecodable managedFields
/// on `old` are dropped rather than failing the write.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    schemas: &Map<String, Value>,
    root: &str,
    now: &str,
) {
    let schemas = Schemas::new(schemas);
    let root = schemas.defs.get(root);
    let scope = Scope::of_subresource(subresource);
    let Some(old) = old else {
        // A creator owns everything it wrote, and its entry is the only one: it is encoded
        // straight from `new`, without flattening, which dominated the cost of a create.
        remove_managed_fields(new);
        let fields = schemas.created_fields_v1(new, root, scope);
        let entry = fields
            .as_object()
            .is_some_and(|f| !f.is_empty())
            .then(|| entry_json(manager, Operation::Update, &api_version_of(new), Some(now), subresource, fields));
        write_entry_values(new, entry.into_iter().collect());
        return;
    };
    let reset = new.pointer("/metadata/managedFields").and_then(Value::as_array).is_some_and(Vec::is_empty);
    let mut entries = if reset { Vec::new() } else { read_entries(old).unwrap_or_default() };
    remove_managed_fields(new);

    let before = schemas.flatten(old, root);
    let after = schemas.flatten(new, root);
    let changes = changed_set(Some(&before.nodes), &after.nodes, scope);
    let own = entries.iter().position(|entry| entry.is(manager, Operation::Update, subresource));
    for (index, entry) in entries.iter_mut().enumerate() {
        if Some(index) != own {
            entry.fields.subtract(&changes);
        }
    }
    let version = api_version_of(new);
    match own {
        Some(index) => {
            let mut fields = entries[index].fields.clone();
            fields.union_with(&changes);
            let changed = !changes.is_empty();
            entries[index].refresh(fields, version, now, changed);
        }
        None => entries.push(Entry::new(manager, Operation::Update, subresource, version, now, changes)),
    }
    for entry in &mut entries {
        schemas.retain_existing(&mut entry.fields, new, root);
    }
    entries.retain(|entry| !entry.fields.is_empty());
    write_entries(new, &entries);
}

/// The FieldsV1 JSON of all fields in `obj` (spec and status alike), leaving out `apiVersion`, `kind`
/// and the server-set metadata as every managedFields entry does.
pub fn fieldset_of(obj: &Value, schemas: &Map<String, Value>, root: &str) -> Value {
    let schemas = Schemas::new(schemas);
    let flat = schemas.flatten(obj, schemas.defs.get(root));
    member_set(&flat.nodes, Scope::Whole).to_fields_v1()
}

fn check_apply_request(applied: &Value, manager: &str) -> Result<(), ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::Invalid("the configuration must be a JSON object".into()));
    }
    if manager.is_empty() {
        return Err(ApplyError::Invalid("fieldManager is required for apply".into()));
    }
    if applied.pointer("/metadata/managedFields").is_some_and(|fields| !fields.is_null()) {
        return Err(ApplyError::Invalid("metadata.managedFields must be nil".into()));
    }
    Ok(())
}

/// Which part of an object a write may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Writes to the resource itself: everything but `status`.
    Main,
    /// Writes to the status subresource: only `status`.
    Status,
    /// Both, for describing a whole object.
    Whole,
}

impl Scope {
    fn of_subresource(subresource: Option<&str>) -> Self {
        if subresource == Some("status") {
            Scope::Status
        } else {
            Scope::Main
        }
    }

    fn tracks(self, path: &[String]) -> bool {
        let Some(first) = path.first() else { return false };
        match first.as_str() {
            "f:apiVersion" | "f:kind" => false,
            "f:metadata" => {
                let server_set = path
                    .get(1)
                    .and_then(|field| field.strip_prefix("f:"))
                    .is_some_and(|name| UNTRACKED_METADATA.contains(&name));
                !server_set && self != Scope::Status
            }
            "f:status" => self != Scope::Main,
            _ => self != Scope::Status,
        }
    }
}

/// A set of field paths: a trie over encoded path elements (`f:name`, `k:{..}`, `v:..`, `i:N`).
/// `member` says the path ending at this node is in the set (the root's is unused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = true,
            Some((head, rest)) => self.children.entry(head.clone()).or_default().insert(rest),
        }
    }

    fn contains(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((head, rest)) => self.children.get(head).is_some_and(|child| child.contains(rest)),
        }
    }

    fn remove(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = false,
            Some((head, rest)) => {
                if let Some(child) = self.children.get_mut(head) {
                    child.remove(rest);
                    if child.is_empty() {
                        self.children.remove(head);
                    }
                }
            }
        }
    }

    fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (element, child) in &other.children {
            self.children.entry(element.clone()).or_default().union_with(child);
        }
    }

    fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (element, theirs) in &other.children {
            if let Some(mine) = self.children.get_mut(element) {
                mine.subtract(theirs);
                if mine.is_empty() {
                    self.children.remove(element);
                }
            }
        }
    }

    fn members(&self) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        self.collect_members(&mut Vec::new(), &mut found);
        found
    }

    fn collect_members(&self, prefix: &mut Vec<String>, found: &mut Vec<Vec<String>>) {
        if self.member {
            found.push(prefix.clone());
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect_members(prefix, found);
            prefix.pop();
        }
    }

    fn to_fields_v1(&self) -> Value {
        let mut encoded = Map::new();
        if self.member && !self.children.is_empty() {
            encoded.insert(".".into(), json!({}));
        }
        for (element, child) in &self.children {
            encoded.insert(element.clone(), child.to_fields_v1());
        }
        Value::Object(encoded)
    }

    fn from_fields_v1(encoded: &Value) -> Result<Self, String> {
        let Value::Object(map) = encoded else { return Err("fieldsV1 nodes must be JSON objects".into()) };
        let mut set = FieldSet::default();
        for (element, nested) in map {
            if element == "." {
                set.member = true;
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|prefix| element.starts_with(prefix)) {
                return Err(format!("unknown path element {element:?} in fieldsV1"));
            }
            let mut child = Self::from_fields_v1(nested)?;
            // A node without children can only be there because it is a member.
            if child.children.is_empty() {
                child.member = true;
            }
            set.children.insert(element.clone(), child);
        }
        Ok(set)
    }
}

/// `.spec.containers[name="nginx"].image`: how upstream prints a path in conflicts.
fn human_path(path: &[String]) -> String {
    path.iter().map(|element| human_element(element)).collect()
}

fn human_element(element: &str) -> String {
    if let Some(name) = element.strip_prefix("f:") {
        return format!(".{name}");
    }
    if let Some(key) = element.strip_prefix("k:") {
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(key) {
            let parts: Vec<String> = fields.iter().map(|(name, value)| format!("{name}={value}")).collect();
            return format!("[{}]", parts.join(","));
        }
    }
    if let Some(value) = element.strip_prefix("v:") {
        return format!("[={value}]");
    }
    let index = element.strip_prefix("i:").unwrap_or(element);
    format!("[{index}]")
}

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn new(
        manager: &str,
        operation: Operation,
        subresource: Option<&str>,
        api_version: String,
        now: &str,
        fields: FieldSet,
    ) -> Self {
        Entry {
            manager: manager.to_owned(),
            operation,
            api_version,
            time: Some(now.to_owned()),
            subresource: subresource.map(str::to_owned),
            fields,
        }
    }

    fn is(&self, manager: &str, operation: Operation, subresource: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == subresource
    }

    /// Replaces the fields; the time moves only when the write changed something, so that a no-op
    /// re-apply leaves the object byte-for-byte the same.
    fn refresh(&mut self, fields: FieldSet, api_version: String, now: &str, changed: bool) {
        if changed || self.time.is_none() {
            self.time = Some(now.to_owned());
        }
        self.fields = fields;
        self.api_version = api_version;
    }

    /// How conflicts name this manager: appliers by name, updaters with the version they wrote.
    fn label(&self) -> String {
        let mut label = Value::from(self.manager.as_str()).to_string();
        if let Some(subresource) = &self.subresource {
            label.push_str(&format!(" with subresource {}", Value::from(subresource.as_str())));
        }
        if self.operation == Operation::Update {
            label.push_str(&format!(" using {}", self.api_version));
        }
        label
    }

    fn from_json(raw: &Value) -> Result<Self, String> {
        let text = |key: &str| raw.get(key).and_then(Value::as_str);
        let operation = text("operation").and_then(Operation::parse).ok_or("operation must be Apply or Update")?;
        if let Some(kind) = text("fieldsType").filter(|kind| *kind != "FieldsV1") {
            return Err(format!("unsupported fieldsType {kind:?}"));
        }
        let fields = match raw.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::default(),
            Some(encoded) => FieldSet::from_fields_v1(encoded)?,
        };
        Ok(Entry {
            manager: text("manager").unwrap_or_default().to_owned(),
            operation,
            api_version: text("apiVersion").unwrap_or_default().to_owned(),
            time: text("time").map(str::to_owned),
            subresource: text("subresource").filter(|name| !name.is_empty()).map(str::to_owned),
            fields,
        })
    }

    fn to_json(&self) -> Value {
        entry_json(
            &self.manager,
            self.operation,
            &self.api_version,
            self.time.as_deref(),
            self.subresource.as_deref(),
            self.fields.to_fields_v1(),
        )
    }
}

/// One managedFields entry as it is stored.
fn entry_json(
    manager: &str,
    operation: Operation,
    api_version: &str,
    time: Option<&str>,
    subresource: Option<&str>,
    fields_v1: Value,
) -> Value {
    let mut raw = Map::new();
    raw.insert("manager".into(), Value::from(manager));
    raw.insert("operation".into(), Value::from(operation.as_str()));
    raw.insert("apiVersion".into(), Value::from(api_version));
    if let Some(time) = time {
        raw.insert("time".into(), Value::from(time));
    }
    raw.insert("fieldsType".into(), Value::from("FieldsV1"));
    raw.insert("fieldsV1".into(), fields_v1);
    if let Some(subresource) = subresource {
        raw.insert("subresource".into(), Value::from(subresource));
    }
    Value::Object(raw)
}

/// The entries of `obj`, with duplicates of one (manager, operation, subresource) folded together.
fn read_entries(obj: &Value) -> Result<Vec<Entry>, String> {
    let Some(raw) = obj.pointer("/metadata/managedFields").filter(|raw| !raw.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = raw else { return Err("must be a list".into()) };
    let mut entries: Vec<Entry> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let entry = Entry::from_json(item).map_err(|why| format!("entry {index}: {why}"))?;
        let same = entries.iter_mut().find(|e| e.is(&entry.manager, entry.operation, entry.subresource.as_deref()));
        match same {
            Some(existing) => {
                existing.fields.union_with(&entry.fields);
                existing.api_version = entry.api_version;
                existing.time = entry.time.or(existing.time.take());
            }
            None => entries.push(entry),
        }
    }
    Ok(entries)
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    write_entry_values(obj, entries.iter().map(Entry::to_json).collect());
}

/// Sets `metadata.managedFields` to `entries`, or removes it when there are none.
fn write_entry_values(obj: &mut Value, entries: Vec<Value>) {
    let Value::Object(map) = obj else { return };
    if entries.is_empty() {
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            metadata.remove("managedFields");
        }
        return;
    }
    let metadata = map.entry("metadata").or_insert_with(|| json!({}));
    if let Value::Object(metadata) = metadata {
        metadata.insert("managedFields".into(), Value::Array(entries));
    }
}

fn remove_managed_fields(obj: &mut Value) {
    if let Some(Value::Object(metadata)) = obj.get_mut("metadata") {
        metadata.remove("managedFields");
    }
}

fn api_version_of(obj: &Value) -> String {
    obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// An apply to the resource may not touch what the server or the status subresource own, whatever
/// the configuration says.
fn restore_server_owned(merged: &mut Value, live: &Value) {
    copy_field(merged, live, "status");
    if let (Some(merged_meta), Some(live_meta)) = (merged.get_mut("metadata"), live.get("metadata")) {
        for name in UNTRACKED_METADATA {
            copy_field(merged_meta, live_meta, name);
        }
    }
}

fn copy_field(target: &mut Value, source: &Value, name: &str) {
    let Value::Object(target) = target else { return };
    match source.get(name) {
        Some(value) => target.insert(name.to_owned(), value.clone()),
        None => target.remove(name),
    };
}

/// Nulls in an applied configuration mean "not set"; they never reach the stored object.
fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

fn is_empty_object(value: &Value) -> bool {
    value.as_object().is_some_and(Map::is_empty)
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Every node of an object below the root, by path.
type Nodes<'v> = BTreeMap<Vec<String>, Node<'v>>;

/// What a path of an object holds, as far as ownership cares.
#[derive(Debug, Clone, Copy)]
struct Node<'v> {
    value: &'v Value,
    /// Replaced as a whole: scalars, nulls, atomic lists and maps, set elements.
    leaf: bool,
    /// A list element or map entry: a field of its own, not just a container of fields.
    entry: bool,
    /// An object of arbitrary keys (map-typed or untyped) rather than a struct.
    map_like: bool,
}

impl Node<'_> {
    /// Whether an applier declaring this node owns the node itself (leaves, elements, entries, `{}`).
    fn declared(&self) -> bool {
        self.leaf || self.entry || is_empty_object(self.value)
    }
}

struct Flattened<'v> {
    nodes: Nodes<'v>,
    /// Problems with the object's shape, each prefixed with where it is.
    errors: Vec<String>,
}

/// The fields an applier of these nodes declares.
fn member_set(nodes: &Nodes<'_>, scope: Scope) -> FieldSet {
    let mut set = FieldSet::default();
    for (path, node) in nodes {
        if node.declared() && scope.tracks(path) {
            set.insert(path);
        }
    }
    set
}

/// What an updater going from `before` to `after` takes ownership of: changed and added leaves, and
/// elements, entries and maps that appeared.
fn changed_set(before: Option<&Nodes<'_>>, after: &Nodes<'_>, scope: Scope) -> FieldSet {
    let mut set = FieldSet::default();
    for (path, node) in after {
        if !scope.tracks(path) {
            continue;
        }
        let previous = before.and_then(|nodes| nodes.get(path));
        let changed = if node.leaf || is_empty_object(node.value) {
            previous.is_none_or(|previous| previous.value != node.value)
        } else {
            previous.is_none() && (node.entry || node.map_like)
        };
        if changed {
            set.insert(path);
        }
    }
    set
}

/// Paths of `intent` that the apply changes and that other entries own, with the owning entry.
fn find_conflicts(
    intent: &FieldSet,
    applied: &Nodes<'_>,
    live: &Nodes<'_>,
    entries: &[Entry],
    own: Option<usize>,
) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    for path in intent.members() {
        let (Some(wanted), Some(current)) = (applied.get(&path), live.get(&path)) else { continue };
        // Containers merge rather than replace, so only leaves can change under someone else.
        if !wanted.leaf || wanted.value == current.value {
            continue;
        }
        for (index, entry) in entries.iter().enumerate() {
            if Some(index) != own && entry.fields.contains(&path) {
                found.push((index, path.clone()));
            }
        }
    }
    found
}

fn describe_conflicts(entries: &[Entry], conflicts: &[(usize, Vec<String>)]) -> Vec<Conflict> {
    let mut described: Vec<(String, Conflict)> = conflicts
        .iter()
        .map(|(index, path)| {
            let entry = &entries[*index];
            let label = entry.label();
            let field = human_path(path);
            let message = format!("conflict with {label}: {field}");
            (label, Conflict { manager: entry.manager.clone(), field, message })
        })
        .collect();
    described.sort_by(|a, b| a.0.cmp(&b.0));
    described.into_iter().map(|(_, conflict)| conflict).collect()
}

/// A schema node of `components.schemas`; None where the schema says nothing.
type SchemaNode<'s> = Option<&'s Value>;

/// How a value is split into fields.
enum Shape<'s> {
    /// One field: scalars, nulls, atomic lists and atomic maps.
    Leaf,
    /// An object: `props` are its declared fields, any other key is a map entry typed by `extra`.
    Object { props: Option<&'s Map<String, Value>>, extra: SchemaNode<'s> },
    /// A list of values, merged as a union.
    Set { items: SchemaNode<'s> },
    /// A list of objects identified by their `keys` fields, merged element by element.
    MapList { items: SchemaNode<'s>, keys: Vec<&'s str> },
}

/// Where a child sits in its parent, to change it in place.
#[derive(Debug, Clone)]
enum Slot {
    Field(String),
    Index(usize),
}

/// A field, element or entry directly inside a value.
struct Child<'v, 's> {
    /// The encoded path element.
    key: String,
    slot: Slot,
    value: &'v Value,
    schema: SchemaNode<'s>,
    entry: bool,
    /// Set elements are owned by value; what is inside them is never split.
    opaque: bool,
    /// For map-list elements, the key fields as path elements: they identify the element and go
    /// only with it.
    key_fields: Vec<String>,
}

#[derive(Clone, Copy)]
struct Schemas<'s> {
    defs: &'s Map<String, Value>,
    /// The attributes of every node, resolved once, when `defs` are the served schemas.
    index: Option<&'s AttrIndex<'s>>,
}

/// The schema attributes the ownership walk reads, in the order [`AttrIndex`] keeps them.
const INDEXED_ATTRS: [&str; 10] = [
    "type",
    "properties",
    "x-kubernetes-map-type",
    "additionalProperties",
    "items",
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-patch-strategy",
    "default",
];

/// Where [`INDEXED_ATTRS`] keeps each attribute, for the hot lookups ([`Schemas::attrs_at`]):
/// finding a name among ten cost more than the indexed lookup itself.
mod at {
    pub const TYPE: usize = 0;
    pub const PROPERTIES: usize = 1;
    pub const MAP_TYPE: usize = 2;
    pub const ADDITIONAL_PROPERTIES: usize = 3;
    pub const ITEMS: usize = 4;
    pub const PATCH_MERGE_KEY: usize = 5;
    pub const LIST_TYPE: usize = 6;
    pub const LIST_MAP_KEYS: usize = 7;
}

/// [`INDEXED_ATTRS`] of every node of a schema set, each already resolved through `$ref` and
/// `allOf`, keyed by the node's address (the set is never changed once indexed). Resolving a
/// reference searches the definitions by a long shared-prefix name, and every field of every
/// object written needs a few: the index turns that walk into one lookup per node.
struct AttrIndex<'s> {
    /// Keyed by address with FNV: SipHash's resistance to chosen keys buys nothing for addresses
    /// and cost as much as the lookup's other work.
    nodes: fnv::FnvHashMap<usize, [Option<&'s Value>; INDEXED_ATTRS.len()]>,
}

impl<'s> AttrIndex<'s> {
    fn build(defs: &'s Map<String, Value>) -> Self {
        let mut index = Self { nodes: fnv::FnvHashMap::default() };
        let plain = Schemas { defs, index: None };
        for def in defs.values() {
            index.add(&plain, def);
        }
        index
    }

    fn add(&mut self, plain: &Schemas<'s>, node: &'s Value) {
        let address = node as *const Value as usize;
        if !node.is_object() || self.nodes.contains_key(&address) {
            return;
        }
        self.nodes.insert(address, plain.attrs(node, INDEXED_ATTRS));
        let props = node.get("properties").and_then(Value::as_object).into_iter().flat_map(|props| props.values());
        let parts = node.get("allOf").and_then(Value::as_array).into_iter().flatten();
        let nested = ["items", "additionalProperties"].into_iter().filter_map(|key| node.get(key));
        for child in props.chain(parts).chain(nested).collect::<Vec<_>>() {
            self.add(plain, child);
        }
    }

    fn get(&self, node: &Value) -> Option<&[Option<&'s Value>; INDEXED_ATTRS.len()]> {
        self.nodes.get(&(node as *const Value as usize))
    }
}

/// The index of the served schemas, built the first time a write walks them.
static SERVED_INDEX: LazyLock<AttrIndex<'static>> =
    LazyLock::new(|| AttrIndex::build(crate::openapi::served_schemas()));

impl<'s> Schemas<'s> {
    fn new(defs: &'s Map<String, Value>) -> Self {
        // Only the process-wide served set is indexed: other sets (tests, tools) are walked as
        // they are, and an address match means the very same, unchanging map.
        let served = crate::openapi::served_schemas_if_built().is_some_and(|served| std::ptr::eq(served, defs));
        Self { defs, index: served.then(|| &*SERVED_INDEX) }
    }

    fn resolve(&self, reference: &str) -> SchemaNode<'s> {
        self.defs.get(reference.rsplit('/').next()?)
    }

    /// `key` of a schema node, looking through `$ref` and `allOf` when the node itself lacks it, so
    /// that attributes next to a reference win over the referenced schema's.
    fn attr(&self, node: &'s Value, key: &str) -> Option<&'s Value> {
        let [found] = self.attrs(node, [key]);
        found
    }

    fn attr_str(&self, node: &'s Value, key: &str) -> Option<&'s str> {
        self.attr(node, key).and_then(Value::as_str)
    }

    /// Several attributes of one node at once, each the first found on the node, then through
    /// its `$ref`, then its `allOf` parts: one walk instead of one per attribute, and none for a
    /// node of the served set, whose attributes are indexed.
    fn attrs<const N: usize>(&self, node: &'s Value, keys: [&str; N]) -> [Option<&'s Value>; N] {
        if let Some(all) = self.index.and_then(|index| index.get(node)) {
            let mut found = [None; N];
            let mut complete = true;
            for (slot, key) in found.iter_mut().zip(keys) {
                match INDEXED_ATTRS.iter().position(|indexed| *indexed == key) {
                    Some(at) => *slot = all[at],
                    None => complete = false,
                }
            }
            if complete {
                return found;
            }
        }
        let mut found = [None; N];
        self.fill_attrs(node, &keys, &mut found, 0);
        found
    }

    /// [`Self::attrs`] by their places in [`INDEXED_ATTRS`] (see [`at`]).
    fn attrs_at<const N: usize>(&self, node: &'s Value, places: [usize; N]) -> [Option<&'s Value>; N] {
        match self.index.and_then(|index| index.get(node)) {
            Some(all) => places.map(|place| all[place]),
            None => self.attrs(node, places.map(|place| INDEXED_ATTRS[place])),
        }
    }

    fn fill_attrs<const N: usize>(
        &self,
        node: &'s Value,
        keys: &[&str; N],
        found: &mut [Option<&'s Value>; N],
        depth: usize,
    ) {
        for (slot, key) in found.iter_mut().zip(keys) {
            if slot.is_none() {
                *slot = node.get(*key);
            }
        }
        if found.iter().all(Option::is_some) || depth >= MAX_REF_DEPTH {
            return;
        }
        if let Some(target) = node.get("$ref").and_then(Value::as_str).and_then(|reference| self.resolve(reference)) {
            self.fill_attrs(target, keys, found, depth + 1);
        }
        for part in node.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            if found.iter().all(Option::is_some) {
                return;
            }
            self.fill_attrs(part, keys, found, depth + 1);
        }
    }

    fn shape(&self, schema: SchemaNode<'s>, value: &Value) -> Result<Shape<'s>, String> {
        let Some(node) = schema else {
            return Ok(if value.is_object() { Shape::Object { props: None, extra: None } } else { Shape::Leaf });
        };
        let [declared, props, map_type, extra] =
            self.attrs_at(node, [at::TYPE, at::PROPERTIES, at::MAP_TYPE, at::ADDITIONAL_PROPERTIES]);
        let declared = declared.and_then(Value::as_str);
        let props = props.and_then(Value::as_object);
        match value {
            Value::Null => Ok(Shape::Leaf),
            Value::Object(_) => {
                if let Some(expected) = declared.filter(|kind| *kind != "object") {
                    return Err(format!("expected {expected}, got an object"));
                }
                if map_type.and_then(Value::as_str) == Some("atomic") {
                    return Ok(Shape::Leaf);
                }
                let extra = extra.filter(|extra| extra.is_object());
                Ok(Shape::Object { props, extra })
            }
            Value::Array(_) => match declared {
                Some(expected) if expected != "array" => Err(format!("expected {expected}, got a list")),
                None if props.is_some() => Err("expected object, got a list".into()),
                _ => Ok(self.list_shape(node)),
            },
            _ => match declared {
                Some(expected @ ("object" | "array")) => Err(format!("expected {expected}, got {value}")),
                None if props.is_some() => Err(format!("expected object, got {value}")),
                _ => Ok(Shape::Leaf),
            },
        }
    }

    fn list_shape(&self, node: &'s Value) -> Shape<'s> {
        let [items, merge_key, list_type, map_keys] =
            self.attrs_at(node, [at::ITEMS, at::PATCH_MERGE_KEY, at::LIST_TYPE, at::LIST_MAP_KEYS]);
        let merge_key = merge_key.and_then(Value::as_str);
        match list_type.and_then(Value::as_str) {
            Some("set") => Shape::Set { items },
            Some("map") => {
                let mut keys: Vec<&'s str> = map_keys
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if keys.is_empty() {
                    keys.extend(merge_key);
                }
                if keys.is_empty() {
                    Shape::Leaf
                } else {
                    Shape::MapList { items, keys }
                }
            }
            Some(_) => Shape::Leaf,
            // Lists that predate list-type carry only strategic-merge hints, which mean the same.
            None => match merge_key {
                Some(key) => Shape::MapList { items, keys: vec![key] },
                None if self.merges_scalars(node, items) => Shape::Set { items },
                None => Shape::Leaf,
            },
        }
    }

    fn merges_scalars(&self, node: &'s Value, items: SchemaNode<'s>) -> bool {
        let merges =
            self.attr_str(node, "x-kubernetes-patch-strategy").is_some_and(|s| s.split(',').any(|s| s == "merge"));
        let scalar = items
            .and_then(|items| self.attr_str(items, "type"))
            .is_some_and(|kind| matches!(kind, "string" | "integer" | "number" | "boolean"));
        merges && scalar
    }

    fn children<'v>(
        &self,
        value: &'v Value,
        shape: &Shape<'s>,
        path: &[String],
        errors: &mut Vec<String>,
    ) -> Vec<Child<'v, 's>> {
        match (shape, value) {
            (Shape::Object { props, extra }, Value::Object(map)) => map
                .iter()
                .map(|(name, nested)| {
                    let declared = props.and_then(|props| props.get(name));
                    Child {
                        key: ["f:", name.as_str()].concat(),
                        slot: Slot::Field(name.clone()),
                        value: nested,
                        schema: declared.or(*extra),
                        entry: declared.is_none(),
                        opaque: false,
                        key_fields: Vec::new(),
                    }
                })
                .collect(),
            (Shape::Set { .. } | Shape::MapList { .. }, Value::Array(items)) => {
                self.elements(items, shape, path, errors, true)
            }
            _ => Vec::new(),
        }
    }

    /// The elements of `list`. `with_key_fields` fills each map-list element's `key_fields`,
    /// which only pruning reads: building them cost a creator's walk a string per element.
    fn elements<'v>(
        &self,
        list: &'v [Value],
        shape: &Shape<'s>,
        path: &[String],
        errors: &mut Vec<String>,
        with_key_fields: bool,
    ) -> Vec<Child<'v, 's>> {
        let mut seen = BTreeSet::new();
        let mut elements = Vec::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            let (schema, key, key_fields, opaque) = match shape {
                Shape::Set { items } => (*items, Ok(format!("v:{item}")), Vec::new(), true),
                Shape::MapList { items, keys } => {
                    let key = self.element_key(item, *items, keys).map(|key| format!("k:{key}"));
                    let key_fields = if with_key_fields {
                        keys.iter().map(|name| ["f:", name].concat()).collect()
                    } else {
                        Vec::new()
                    };
                    (*items, key, key_fields, false)
                }
                _ => return elements,
            };
            let key = match key {
                Ok(key) => {
                    if !seen.insert(key.clone()) {
                        errors.push(format!("{}: duplicate entries for {}", human_path(path), human_element(&key)));
                    }
                    key
                }
                Err(why) => {
                    errors.push(format!("{}[{index}]: {why}", human_path(path)));
                    format!("i:{index}")
                }
            };
            elements.push(Child {
                key,
                slot: Slot::Index(index),
                value: item,
                schema,
                entry: true,
                opaque,
                key_fields,
            });
        }
        elements
    }

    /// The `k:` body for a map-list element: its key fields as a JSON object with sorted keys. A key
    /// field left out falls back to its schema default, as the server would default it.
    fn element_key(&self, item: &Value, items: SchemaNode<'s>, keys: &[&str]) -> Result<String, String> {
        let Value::Object(fields) = item else { return Err("list element must be an object".into()) };
        let mut parts = BTreeMap::new();
        for &name in keys {
            let value = fields
                .get(name)
                .filter(|value| !value.is_null())
                .or_else(|| self.key_default(items, name))
                .ok_or_else(|| format!("missing key field {name:?}"))?;
            parts.insert(name, value);
        }
        let body: Vec<String> = parts.iter().map(|(name, value)| format!("{}:{value}", Value::from(*name))).collect();
        Ok(format!("{{{}}}", body.join(",")))
    }

    fn key_default(&self, items: SchemaNode<'s>, name: &str) -> Option<&'s Value> {
        let field = self.attr(items?, "properties")?.get(name)?;
        self.attr(field, "default")
    }

    fn flatten<'v>(&self, value: &'v Value, schema: SchemaNode<'s>) -> Flattened<'v> {
        let mut flat = Flattened { nodes: BTreeMap::new(), errors: Vec::new() };
        let root = Child {
            key: String::new(),
            slot: Slot::Field(String::new()),
            value,
            schema,
            entry: false,
            opaque: false,
            key_fields: Vec::new(),
        };
        self.walk(root, &mut Vec::new(), &mut flat);
        flat
    }

    /// The FieldsV1 encoding of the set a creator of `value` owns (leaves, elements, entries, maps
    /// and empty objects within `scope`), written straight from the value: building the set first
    /// and encoding it after copied every field name twice.
    fn created_fields_v1(&self, value: &Value, schema: SchemaNode<'s>, scope: Scope) -> Value {
        let (_, children) = self.created_below(value, schema, false, false, &mut Vec::new(), scope);
        Value::Object(children)
    }

    /// Whether the node at `path` is itself a member, and the encodings of its children that
    /// hold anything.
    fn created_below(
        &self,
        value: &Value,
        schema: SchemaNode<'s>,
        entry: bool,
        opaque: bool,
        path: &mut Vec<String>,
        scope: Scope,
    ) -> (bool, Map<String, Value>) {
        let shape = if opaque { Shape::Leaf } else { self.shape(schema, value).unwrap_or(Shape::Leaf) };
        let mut children = Map::new();
        let elements = match (&shape, value) {
            (Shape::Set { .. } | Shape::MapList { .. }, Value::Array(items)) => {
                self.elements(items, &shape, path, &mut Vec::new(), false)
            }
            _ => Vec::new(),
        };
        let mut descend = |key: String, value: &Value, schema: SchemaNode<'s>, entry: bool, opaque: bool| {
            path.push(key);
            let (member, mut below) = self.created_below(value, schema, entry, opaque, path, scope);
            if let Some(key) = path.pop() {
                if member || !below.is_empty() {
                    // As FieldsV1 writes it: a member with children says so with ".".
                    if member && !below.is_empty() {
                        below.insert(".".into(), Value::Object(Map::new()));
                    }
                    children.insert(key, Value::Object(below));
                }
            }
        };
        // Fields are walked here rather than through `children`, which would also build each
        // field's slot (a copy of its name) that a creator's set never uses.
        match (&shape, value) {
            (Shape::Object { props, extra }, Value::Object(map)) => {
                for (name, nested) in map {
                    let declared = props.and_then(|props| props.get(name));
                    descend(["f:", name.as_str()].concat(), nested, declared.or(*extra), declared.is_none(), false);
                }
            }
            _ => {
                for child in elements {
                    descend(child.key, child.value, child.schema, child.entry, child.opaque);
                }
            }
        }
        let mut member = false;
        if !path.is_empty() && scope.tracks(path) {
            let leaf = matches!(shape, Shape::Leaf);
            let map_like = matches!(shape, Shape::Object { props: None, .. });
            member = leaf || is_empty_object(value) || entry || map_like;
        }
        (member, children)
    }

    fn walk<'v>(&self, node: Child<'v, 's>, path: &mut Vec<String>, flat: &mut Flattened<'v>) {
        let shape = if node.opaque {
            Shape::Leaf
        } else {
            self.shape(node.schema, node.value).unwrap_or_else(|why| {
                flat.errors.push(format!("{}: {why}", human_path(path)));
                Shape::Leaf
            })
        };
        for child in self.children(node.value, &shape, path, &mut flat.errors) {
            path.push(child.key.clone());
            self.walk(child, path, flat);
            path.pop();
        }
        if !path.is_empty() {
            let leaf = matches!(shape, Shape::Leaf);
            let map_like = matches!(shape, Shape::Object { props: None, .. });
            flat.nodes.insert(path.clone(), Node { value: node.value, leaf, entry: node.entry, map_like });
        }
    }

    /// `applied` merged into `live`: objects field by field, map-lists by key, sets as a union, the
    /// rest replaced. A null in `applied` removes the field.
    fn merge(&self, live: &Value, applied: &Value, schema: SchemaNode<'s>) -> Value {
        let shape = self.shape(schema, applied).unwrap_or(Shape::Leaf);
        match (&shape, live, applied) {
            (Shape::Object { props, extra }, Value::Object(current), Value::Object(wanted)) => {
                let mut merged = current.clone();
                for (name, value) in wanted {
                    if value.is_null() {
                        merged.remove(name);
                        continue;
                    }
                    let schema = props.and_then(|props| props.get(name)).or(*extra);
                    let value = match current.get(name) {
                        Some(existing) => self.merge(existing, value, schema),
                        None => strip_nulls(value),
                    };
                    merged.insert(name.clone(), value);
                }
                Value::Object(merged)
            }
            (Shape::Set { .. }, Value::Array(current), Value::Array(wanted)) => {
                let mut merged = current.clone();
                for value in wanted {
                    if !merged.contains(value) {
                        merged.push(value.clone());
                    }
                }
                Value::Array(merged)
            }
            (Shape::MapList { .. }, Value::Array(current), Value::Array(wanted)) => {
                let mut ignored = Vec::new();
                let existing: Vec<String> = self
                    .elements(current, &shape, &[], &mut ignored, false)
                    .into_iter()
                    .map(|child| child.key)
                    .collect();
                let mut merged = current.clone();
                for element in self.elements(wanted, &shape, &[], &mut ignored, false) {
                    match existing.iter().position(|key| *key == element.key) {
                        Some(index) => merged[index] = self.merge(&current[index], element.value, element.schema),
                        None => merged.push(strip_nulls(element.value)),
                    }
                }
                Value::Array(merged)
            }
            _ => strip_nulls(applied),
        }
    }

    /// Removes from `value` what is in `dropped` and not in `kept`. An element or entry somebody
    /// still owns something inside survives with its key fields; a container left empty by the
    /// removal goes too unless somebody owns it. Returns whether `value` was emptied.
    fn prune(
        &self,
        value: &mut Value,
        schema: SchemaNode<'s>,
        dropped: &FieldSet,
        kept: Option<&FieldSet>,
        protected: &[String],
    ) -> bool {
        enum Step<'a, 's> {
            Delete(Slot),
            Descend {
                slot: Slot,
                schema: SchemaNode<'s>,
                dropped: &'a FieldSet,
                kept: Option<&'a FieldSet>,
                protected: Vec<String>,
            },
        }
        let was_empty = is_empty_container(value);
        let shape = self.shape(schema, value).unwrap_or(Shape::Leaf);
        let mut steps = Vec::new();
        for child in self.children(value, &shape, &[], &mut Vec::new()) {
            let Some(gone) = dropped.children.get(&child.key) else { continue };
            if protected.contains(&child.key) {
                continue;
            }
            let still = kept.and_then(|kept| kept.children.get(&child.key));
            if gone.member && still.is_none_or(FieldSet::is_empty) {
                steps.push(Step::Delete(child.slot));
            } else if !gone.children.is_empty() {
                let protected = child.key_fields;
                steps.push(Step::Descend {
                    slot: child.slot,
                    schema: child.schema,
                    dropped: gone,
                    kept: still,
                    protected,
                });
            }
        }
        let mut doomed = Vec::new();
        for step in steps {
            match step {
                Step::Delete(slot) => doomed.push(slot),
                Step::Descend { slot, schema, dropped, kept, protected } => {
                    let Some(child) = slot_mut(value, &slot) else { continue };
                    let emptied = self.prune(child, schema, dropped, kept, &protected);
                    if emptied && !kept.is_some_and(|kept| kept.member) {
                        doomed.push(slot);
                    }
                }
            }
        }
        delete_slots(value, doomed);
        !was_empty && is_empty_container(value)
    }

    /// Drops from `set` the paths `value` no longer has: ownership of a field ends with the field.
    fn retain_existing(&self, set: &mut FieldSet, value: &Value, schema: SchemaNode<'s>) {
        let shape = self.shape(schema, value).unwrap_or(Shape::Leaf);
        let children: BTreeMap<String, Child<'_, 's>> = self
            .children(value, &shape, &[], &mut Vec::new())
            .into_iter()
            .map(|child| (child.key.clone(), child))
            .collect();
        set.children.retain(|key, owned| {
            let Some(child) = children.get(key) else { return false };
            if child.opaque {
                owned.children.clear();
            } else if !owned.children.is_empty() {
                self.retain_existing(owned, child.value, child.schema);
            }
            !owned.is_empty()
        });
    }
}

fn slot_mut<'a>(value: &'a mut Value, slot: &Slot) -> Option<&'a mut Value> {
    match slot {
        Slot::Field(name) => value.get_mut(name.as_str()),
        Slot::Index(index) => value.get_mut(*index),
    }
}

fn delete_slots(value: &mut Value, slots: Vec<Slot>) {
    let mut indices = Vec::new();
    for slot in slots {
        match (slot, &mut *value) {
            (Slot::Field(name), Value::Object(map)) => {
                map.remove(&name);
            }
            (Slot::Index(index), _) => indices.push(index),
            _ => {}
        }
    }
    if let Value::Array(items) = value {
        indices.retain(|index| *index < items.len());
        indices.sort_unstable();
        indices.dedup();
        for index in indices.into_iter().rev() {
            items.remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

    fn reference(name: &str) -> Value {
        json!({ "allOf": [{ "$ref": format!("#/components/schemas/{name}") }] })
    }

    fn string_map() -> Value {
        json!({ "type": "object", "additionalProperties": { "type": "string", "default": "" } })
    }

    /// A cut-down Deployment schema with the list and map flavours the real one uses.
    fn schemas() -> Map<String, Value> {
        let schemas = json!({
            DEPLOYMENT: { "type": "object", "properties": {
                "apiVersion": { "type": "string" },
                "kind": { "type": "string" },
                "metadata": reference("meta.ObjectMeta"),
                "spec": reference("apps.DeploymentSpec"),
                "status": reference("apps.DeploymentStatus"),
            }},
            "meta.ObjectMeta": { "type": "object", "properties": {
                "name": { "type": "string" },
                "namespace": { "type": "string" },
                "uid": { "type": "string" },
                "resourceVersion": { "type": "string" },
                "labels": string_map(),
                "annotations": string_map(),
                "finalizers": { "type": "array", "items": { "type": "string" }, "x-kubernetes-list-type": "set" },
                "managedFields": { "type": "array", "items": { "type": "object" }, "x-kubernetes-list-type": "atomic" },
            }},
            "meta.LabelSelector": { "type": "object", "x-kubernetes-map-type": "atomic", "properties": {
                "matchLabels": string_map(),
            }},
            "apps.DeploymentSpec": { "type": "object", "properties": {
                "replicas": { "type": "integer" },
                "selector": reference("meta.LabelSelector"),
                "template": reference("core.PodTemplateSpec"),
            }},
            "apps.DeploymentStatus": { "type": "object", "properties": {
                "replicas": { "type": "integer" },
                "readyReplicas": { "type": "integer" },
            }},
            "core.PodTemplateSpec": { "type": "object", "properties": {
                "metadata": reference("meta.ObjectMeta"),
                "spec": reference("core.PodSpec"),
            }},
            "core.PodSpec": { "type": "object", "properties": {
                "containers": {
                    "type": "array",
                    "items": reference("core.Container"),
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                },
                "nodeSelector": string_map(),
            }},
            "core.Container": { "type": "object", "properties": {
                "name": { "type": "string" },
                "image": { "type": "string" },
                "args": { "type": "array", "items": { "type": "string" } },
                "ports": {
                    "type": "array",
                    "items": reference("core.ContainerPort"),
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                },
                "env": {
                    "type": "array",
                    "items": reference("core.EnvVar"),
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge",
                },
            }},
            "core.ContainerPort": { "type": "object", "properties": {
                "containerPort": { "type": "integer" },
                "protocol": { "type": "string", "default": "TCP" },
                "name": { "type": "string" },
            }},
            "core.EnvVar": { "type": "object", "properties": {
                "name": { "type": "string" },
                "value": { "type": "string" },
            }},
        });
        match schemas {
            Value::Object(map) => map,
            _ => unreachable!("the fixture is an object"),
        }
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "default", "labels": { "app": "web" } },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": "web" } },
                "template": {
                    "metadata": { "labels": { "app": "web" } },
                    "spec": { "containers": [{ "name": "nginx", "image": image }] },
                },
            },
        })
    }

    fn apply(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
        now: &str,
    ) -> Result<Value, ApplyError> {
        server_side_apply(live, applied, manager, force, &schemas(), DEPLOYMENT, now)
    }

    fn apply_ok(live: Option<&Value>, applied: &Value, manager: &str, now: &str) -> Value {
        apply(live, applied, manager, false, now).expect("apply without conflicts")
    }

    /// `obj` as stored after the server handled a write: the server owns uid and resourceVersion.
    fn stored(mut obj: Value) -> Value {
        obj["metadata"]["uid"] = json!("uid-1");
        obj["metadata"]["resourceVersion"] = json!("7");
        obj
    }

    fn update(old: &Value, new: &Value, manager: &str, subresource: Option<&str>) -> Value {
        let mut new = new.clone();
        record_update(Some(old), &mut new, manager, subresource, &schemas(), DEPLOYMENT, "2024-01-02T00:00:00Z");
        new
    }

    fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
        obj["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|entry| entry["manager"] == manager && entry["operation"] == operation)
    }

    fn fields<'a>(obj: &'a Value, manager: &str, operation: &str) -> &'a Value {
        &entry(obj, manager, operation).expect("the manager has an entry")["fieldsV1"]
    }

    fn without_managed_fields(obj: &Value) -> Value {
        let mut obj = obj.clone();
        remove_managed_fields(&mut obj);
        obj
    }

    #[test]
    fn the_one_pass_create_set_matches_the_diff_from_nothing() {
        let defs = schemas();
        let schemas = Schemas::new(&defs);
        let root = defs.get(DEPLOYMENT);
        let mut objects = vec![deployment(3, "nginx:1"), json!({"spec": {"unknown": {"a": [1, {"b": {}}]}}})];
        let mut full = deployment(2, "nginx:2");
        full["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]);
        full["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
        full["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-v", "-q"]);
        full["metadata"]["finalizers"] = json!(["x/y"]);
        full["metadata"]["annotations"] = json!({});
        full["status"] = json!({"replicas": 2, "readyReplicas": 1});
        objects.push(full);
        for obj in &objects {
            for scope in [Scope::Main, Scope::Status, Scope::Whole] {
                let flat = schemas.flatten(obj, root);
                assert_eq!(
                    schemas.created_fields_v1(obj, root, scope),
                    changed_set(None, &flat.nodes, scope).to_fields_v1(),
                    "{obj}"
                );
            }
        }
        // And on the served Pod schema, with every list flavour a pod has.
        let served = crate::openapi::all_schemas();
        let schemas = Schemas::new(&served);
        let root = served.get("io.k8s.api.core.v1.Pod");
        assert!(root.is_some(), "the Pod schema is served");
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "ownerReferences": [{"uid": "u", "name": "o", "kind": "K", "apiVersion": "v1"}]},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "1"}}, "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                "volumes": [{"name": "v", "emptyDir": {}}], "tolerations": [{"key": "k", "operator": "Exists"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}});
        let flat = schemas.flatten(&pod, root);
        for scope in [Scope::Main, Scope::Status] {
            let direct = schemas.created_fields_v1(&pod, root, scope);
            assert!(direct.as_object().is_some_and(|f| !f.is_empty()));
            assert_eq!(direct, changed_set(None, &flat.nodes, scope).to_fields_v1());
        }
    }

    #[test]
    fn the_served_index_resolves_every_node_as_the_plain_walk_does() {
        let served = crate::openapi::served_schemas();
        let indexed = Schemas::new(served);
        assert!(indexed.index.is_some(), "the served set is indexed");
        let plain = Schemas { defs: served, index: None };
        let index = indexed.index.expect("indexed");
        assert!(index.nodes.len() > served.len(), "nested nodes are indexed too");
        let mut checked = 0;
        fn visit<'s>(node: &'s Value, out: &mut Vec<&'s Value>) {
            out.push(node);
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                props.values().for_each(|child| visit(child, out));
            }
            for key in ["items", "additionalProperties"] {
                if let Some(child) = node.get(key) {
                    visit(child, out);
                }
            }
        }
        let mut nodes = Vec::new();
        served.values().for_each(|def| visit(def, &mut nodes));
        for node in nodes {
            for key in INDEXED_ATTRS {
                assert_eq!(indexed.attr(node, key), plain.attr(node, key), "{key} of {node}");
            }
            let pairs = ["type", "properties", "x-kubernetes-map-type", "additionalProperties"];
            assert_eq!(indexed.attrs(node, pairs), plain.attrs(node, pairs));
            let places = [at::TYPE, at::PROPERTIES, at::MAP_TYPE, at::ADDITIONAL_PROPERTIES];
            assert_eq!(indexed.attrs_at(node, places), plain.attrs(node, pairs));
            assert_eq!(plain.attrs_at(node, places), plain.attrs(node, pairs));
            let list =
                ["items", "x-kubernetes-patch-merge-key", "x-kubernetes-list-type", "x-kubernetes-list-map-keys"];
            let places = [at::ITEMS, at::PATCH_MERGE_KEY, at::LIST_TYPE, at::LIST_MAP_KEYS];
            assert_eq!(indexed.attrs_at(node, places), plain.attrs(node, list));
            checked += 1;
        }
        assert!(checked > 1000, "only {checked} nodes checked");
        // Another map, even with the same content, is walked without the index.
        let copy = crate::openapi::all_schemas();
        assert!(Schemas::new(&copy).index.is_none());
    }

    #[test]
    fn create_by_apply_keeps_the_configuration_and_records_an_apply_entry() {
        let applied = deployment(2, "nginx:1.25");
        let created = apply_ok(None, &applied, "kubectl", "2024-01-01T00:00:00Z");

        assert_eq!(without_managed_fields(&created), applied);
        let expected = json!([{
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": { "f:labels": { "f:app": {} } },
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": { "f:labels": { "f:app": {} } },
                        "f:spec": { "f:containers": {
                            "k:{\"name\":\"nginx\"}": { ".": {}, "f:image": {}, "f:name": {} },
                        }},
                    },
                },
            },
        }]);
        assert_eq!(created["metadata"]["managedFields"], expected);
    }

    #[test]
    fn creating_with_nothing_to_own_records_no_entry() {
        let applied = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" } });

        let created = apply_ok(None, &applied, "kubectl", "2024-01-01T00:00:00Z");

        assert_eq!(created, applied);
    }

    #[test]
    fn reapplying_the_same_configuration_changes_nothing() {
        let applied = deployment(2, "nginx:1.25");
        let live = stored(apply_ok(None, &applied, "kubectl", "2024-01-01T00:00:00Z"));

        let again = apply_ok(Some(&live), &applied, "kubectl", "2024-02-02T00:00:00Z");

        assert_eq!(again, live);
    }

    #[test]
    fn reapplying_a_change_moves_the_entry_time() {
        let live = stored(apply_ok(None, &deployment(2, "nginx:1.25"), "kubectl", "2024-01-01T00:00:00Z"));

        let changed = apply_ok(Some(&live), &deployment(2, "nginx:1.26"), "kubectl", "2024-02-02T00:00:00Z");

        assert_eq!(changed["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");
        assert_eq!(entry(&changed, "kubectl", "Apply").expect("entry")["time"], "2024-02-02T00:00:00Z");
        assert_eq!(changed["metadata"]["uid"], "uid-1", "apply leaves server-set metadata alone");
    }

    /// A applies replicas 1, B scales to 3 with an ordinary update.
    fn scaled_by_other_manager() -> Value {
        let live = stored(apply_ok(None, &deployment(1, "nginx:1.25"), "alice", "2024-01-01T00:00:00Z"));
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(3);
        update(&live, &scaled, "bob", None)
    }

    #[test]
    fn an_update_takes_ownership_of_what_it_changed() {
        let live = scaled_by_other_manager();

        assert_eq!(fields(&live, "bob", "Update"), &json!({ "f:spec": { "f:replicas": {} } }));
        assert_eq!(fields(&live, "alice", "Apply")["f:spec"].get("f:replicas"), None);
        assert_eq!(entry(&live, "bob", "Update").expect("entry")["apiVersion"], "apps/v1");
    }

    #[test]
    fn applying_a_different_value_for_a_field_updated_by_another_manager_conflicts() {
        let live = scaled_by_other_manager();

        let error = apply(Some(&live), &deployment(2, "nginx:1.25"), "alice", false, "2024-01-03T00:00:00Z")
            .expect_err("bob owns .spec.replicas");

        let expected = Conflict {
            manager: "bob".into(),
            field: ".spec.replicas".into(),
            message: "conflict with \"bob\" using apps/v1: .spec.replicas".into(),
        };
        assert_eq!(error, ApplyError::Conflicts(vec![expected.clone()]));
        assert_eq!(
            error.to_string(),
            "Apply failed with 1 conflict: conflict with \"bob\" using apps/v1: .spec.replicas"
        );
        assert_eq!(expected.cause_message(), "conflict with \"bob\" using apps/v1");
    }

    #[test]
    fn forcing_the_apply_takes_the_field_over() {
        let live = scaled_by_other_manager();

        let forced = apply(Some(&live), &deployment(2, "nginx:1.25"), "alice", true, "2024-01-03T00:00:00Z")
            .expect("force resolves conflicts");

        assert_eq!(forced["spec"]["replicas"], 2);
        assert_eq!(fields(&forced, "alice", "Apply")["f:spec"]["f:replicas"], json!({}));
        assert_eq!(entry(&forced, "bob", "Update"), None, "bob owned nothing else");
    }

    #[test]
    fn a_conflict_with_another_applier_names_it_without_a_version() {
        let live = stored(apply_ok(None, &deployment(1, "nginx:1.25"), "alice", "2024-01-01T00:00:00Z"));
        let applied = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
            "spec": { "replicas": 5 } });

        let error = apply(Some(&live), &applied, "carol", false, "2024-01-02T00:00:00Z").expect_err("alice owns it");

        let ApplyError::Conflicts(conflicts) = error else { panic!("expected conflicts, got {error:?}") };
        assert_eq!(conflicts[0].message, "conflict with \"alice\": .spec.replicas");
    }

    #[test]
    fn fields_dropped_from_the_configuration_are_removed_unless_someone_else_owns_them() {
        let mut first = deployment(1, "nginx:1.25");
        first["metadata"]["labels"]["tier"] = json!("frontend");
        let live = stored(apply_ok(None, &first, "alice", "2024-01-01T00:00:00Z"));
        let mut labelled = live.clone();
        labelled["metadata"]["labels"]["team"] = json!("web");
        let live = update(&live, &labelled, "bob", None);

        let mut second = deployment(1, "nginx:1.25");
        second["metadata"]["labels"] = json!({ "app": "web" });
        let result = apply_ok(Some(&live), &second, "alice", "2024-01-03T00:00:00Z");

        assert_eq!(result["metadata"]["labels"], json!({ "app": "web", "team": "web" }));
        assert_eq!(fields(&result, "alice", "Apply")["f:metadata"], json!({ "f:labels": { "f:app": {} } }));
    }

    #[test]
    fn a_map_left_empty_by_removal_goes_too() {
        let mut first = deployment(1, "nginx:1.25");
        first["spec"]["template"]["spec"]["nodeSelector"] = json!({ "disk": "ssd" });
        let live = stored(apply_ok(None, &first, "alice", "2024-01-01T00:00:00Z"));

        let result = apply_ok(Some(&live), &deployment(1, "nginx:1.25"), "alice", "2024-01-02T00:00:00Z");

        assert_eq!(result["spec"]["template"]["spec"].get("nodeSelector"), None);
    }

    #[test]
    fn appliers_setting_the_same_value_share_the_field() {
        let live = stored(apply_ok(None, &deployment(3, "nginx:1.25"), "alice", "2024-01-01T00:00:00Z"));
        let bobs = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
            "spec": { "replicas": 3 } });

        let shared = stored(apply_ok(Some(&live), &bobs, "bob", "2024-01-02T00:00:00Z"));
        assert_eq!(fields(&shared, "alice", "Apply")["f:spec"]["f:replicas"], json!({}));
        assert_eq!(fields(&shared, "bob", "Apply"), &json!({ "f:spec": { "f:replicas": {} } }));

        // Alice letting go of the field leaves it with Bob, value intact.
        let mut without = deployment(3, "nginx:1.25");
        without["spec"].as_object_mut().expect("spec").remove("replicas");
        let released = apply_ok(Some(&shared), &without, "alice", "2024-01-03T00:00:00Z");
        assert_eq!(released["spec"]["replicas"], 3);
        assert_eq!(fields(&released, "alice", "Apply")["f:spec"].get("f:replicas"), None);
    }

    #[test]
    fn containers_merge_by_name_and_keep_other_managers_containers() {
        let live = stored(apply_ok(None, &deployment(1, "nginx:1.25"), "alice", "2024-01-01T00:00:00Z"));
        let sidecar = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
            "spec": { "template": { "spec": { "containers": [{ "name": "proxy", "image": "envoy:1" }] } } } });
        let live = stored(apply_ok(Some(&live), &sidecar, "bob", "2024-01-02T00:00:00Z"));

        let result = apply_ok(Some(&live), &deployment(1, "nginx:1.26"), "alice", "2024-01-03T00:00:00Z");

        assert_eq!(
            result["spec"]["template"]["spec"]["containers"],
            json!([{ "name": "nginx", "image": "nginx:1.26" }, { "name": "proxy", "image": "envoy:1" }])
        );
        let bobs = &fields(&result, "bob", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"];
        assert_eq!(bobs, &json!({ "k:{\"name\":\"proxy\"}": { ".": {}, "f:image": {}, "f:name": {} } }));
    }

    #[test]
    fn an_element_dropped_by_its_applier_disappears() {
        let mut two = deployment(1, "nginx:1.25");
        two["spec"]["template"]["spec"]["containers"] =
            json!([{ "name": "nginx", "image": "nginx:1.25" }, { "name": "proxy", "image": "envoy:1" }]);
        let live = stored(apply_ok(None, &two, "alice", "2024-01-01T00:00:00Z"));

        let result = apply_ok(Some(&live), &deployment(1, "nginx:1.25"), "alice", "2024-01-02T00:00:00Z");

        assert_eq!(
            result["spec"]["template"]["spec"]["containers"],
            json!([{ "name": "nginx", "image": "nginx:1.25" }])
        );
    }

    #[test]
    fn an_element_stays_with_its_key_while_someone_else_owns_part_of_it() {
        let mut two = deployment(1, "nginx:1.25");
        two["spec"]["template"]["spec"]["containers"] =
            json!([{ "name": "nginx", "image": "nginx:1.25" }, { "name": "proxy", "image": "envoy:1" }]);
        let live = stored(apply_ok(None, &two, "alice", "2024-01-01T00:00:00Z"));
        let mut bumped = live.clone();
        bumped["spec"]["template"]["spec"]["containers"][1]["image"] = json!("envoy:2");
        let live = update(&live, &bumped, "bob", None);

        let result = apply_ok(Some(&live), &deployment(1, "nginx:1.25"), "alice", "2024-01-02T00:00:00Z");

        assert_eq!(
            result["spec"]["template"]["spec"]["containers"],
            json!([{ "name": "nginx", "image": "nginx:1.25" }, { "name": "proxy", "image": "envoy:2" }])
        );
    }

    #[test]
    fn sets_merge_as_a_union() {
        let mut first = deployment(1, "nginx:1.25");
        first["metadata"]["finalizers"] = json!(["a.example/x"]);
        let live = stored(apply_ok(None, &first, "alice", "2024-01-01T00:00:00Z"));
        let bobs = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web",
            "finalizers": ["b.example/y", "a.example/x"] } });

        let result = apply_ok(Some(&live), &bobs, "bob", "2024-01-02T00:00:00Z");

        assert_eq!(result["metadata"]["finalizers"], json!(["a.example/x", "b.example/y"]));
        assert_eq!(
            fields(&result, "bob", "Apply")["f:metadata"]["f:finalizers"],
            json!({ "v:\"a.example/x\"": {}, "v:\"b.example/y\"": {} })
        );
    }

    #[test]
    fn atomic_lists_are_replaced_and_owned_whole() {
        let mut first = deployment(1, "nginx:1.25");
        first["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-a", "-b"]);
        let live = stored(apply_ok(None, &first, "alice", "2024-01-01T00:00:00Z"));
        let mut second = first.clone();
        second["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-c"]);

        let result = apply_ok(Some(&live), &second, "alice", "2024-01-02T00:00:00Z");

        assert_eq!(result["spec"]["template"]["spec"]["containers"][0]["args"], json!(["-c"]));
        let container = &fields(&result, "alice", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"nginx\"}"];
        assert_eq!(container["f:args"], json!({}));
    }

    #[test]
    fn a_null_in_the_configuration_removes_the_field() {
        let live = stored(apply_ok(None, &deployment(1, "nginx:1.25"), "alice", "2024-01-01T00:00:00Z"));
        let mut applied = deployment(1, "nginx:1.25");
        applied["spec"]["replicas"] = Value::Null;

        let result = apply_ok(Some(&live), &applied, "alice", "2024-01-02T00:00:00Z");

        assert_eq!(result["spec"].get("replicas"), None);
    }

    #[test]
    fn status_writes_are_recorded_for_the_status_subresource_only() {
        let live = stored(apply_ok(None, &deployment(1, "nginx:1.25"), "alice", "2024-01-01T00:00:00Z"));
        let mut reported = live.clone();
        reported["status"] = json!({ "replicas": 1, "readyReplicas": 1 });

        let result = update(&live, &reported, "controller", Some("status"));

        let recorded = entry(&result, "controller", "Update").expect("status entry");
        assert_eq!(recorded["subresource"], "status");
        assert_eq!(recorded["fieldsV1"], json!({ "f:status": { "f:readyReplicas": {}, "f:replicas": {} } }));
        assert_eq!(fields(&result, "alice", "Apply"), fields(&live, "alice", "Apply"));

        // The same change through the main resource is not anybody's: status is not written there.
        let main = update(&live, &reported, "controller", None);
        assert_eq!(entry(&main, "controller", "Update"), None);
    }

    #[test]
    fn an_apply_to_the_resource_leaves_status_alone() {
        let mut live = stored(apply_ok(None, &deployment(1, "nginx:1.25"), "alice", "2024-01-01T00:00:00Z"));
        live["status"] = json!({ "replicas": 1 });
        let mut applied = deployment(1, "nginx:1.25");
        applied["status"] = json!({ "replicas": 9 });

        let result = apply_ok(Some(&live), &applied, "alice", "2024-01-02T00:00:00Z");

        assert_eq!(result["status"], json!({ "replicas": 1 }));
        assert_eq!(fields(&result, "alice", "Apply").get("f:status"), None);
    }

    #[test]
    fn map_list_keys_with_two_fields_encode_sorted_and_use_schema_defaults() {
        let mut applied = deployment(1, "nginx:1.25");
        applied["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{ "containerPort": 80 }]);

        let set = fieldset_of(&applied, &schemas(), DEPLOYMENT);

        let ports = &set["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]["f:ports"];
        assert_eq!(
            ports,
            &json!({ "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": { ".": {}, "f:containerPort": {} } })
        );
    }

    #[test]
    fn patch_merge_key_alone_makes_a_map_list() {
        let mut applied = deployment(1, "nginx:1.25");
        applied["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{ "name": "MODE", "value": "prod" }]);

        let set = fieldset_of(&applied, &schemas(), DEPLOYMENT);

        let env = &set["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]["f:env"];
        assert_eq!(env, &json!({ "k:{\"name\":\"MODE\"}": { ".": {}, "f:name": {}, "f:value": {} } }));
    }

    #[test]
    fn fieldset_of_covers_status_but_not_server_set_fields() {
        let mut obj = stored(deployment(1, "nginx:1.25"));
        obj["status"] = json!({ "replicas": 1 });

        let set = fieldset_of(&obj, &schemas(), DEPLOYMENT);

        assert_eq!(set["f:status"], json!({ "f:replicas": {} }));
        assert_eq!(set["f:metadata"], json!({ "f:labels": { "f:app": {} } }));
        assert_eq!(set.get("f:apiVersion"), None);
    }

    #[test]
    fn an_update_owns_added_elements_and_maps_with_their_dot() {
        let live = stored(apply_ok(None, &deployment(1, "nginx:1.25"), "alice", "2024-01-01T00:00:00Z"));
        let mut edited = live.clone();
        edited["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({ "name": "proxy", "image": "envoy:1" }));
        edited["metadata"]["annotations"] = json!({ "note": "x" });

        let result = update(&live, &edited, "editor", None);

        assert_eq!(
            fields(&result, "editor", "Update"),
            &json!({
                "f:metadata": { "f:annotations": { ".": {}, "f:note": {} } },
                "f:spec": { "f:template": { "f:spec": { "f:containers": {
                    "k:{\"name\":\"proxy\"}": { ".": {}, "f:image": {}, "f:name": {} },
                }}}},
            })
        );
    }

    #[test]
    fn an_update_that_changes_a_container_image_leaves_the_element_with_its_applier() {
        let live = stored(apply_ok(None, &deployment(1, "nginx:1.25"), "alice", "2024-01-01T00:00:00Z"));
        let mut bumped = live.clone();
        bumped["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");

        let result = update(&live, &bumped, "bob", None);

        let alices = &fields(&result, "alice", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"];
        assert_eq!(alices, &json!({ "k:{\"name\":\"nginx\"}": { ".": {}, "f:name": {} } }));
        let error = apply(Some(&result), &deployment(1, "nginx:1.27"), "alice", false, "2024-01-03T00:00:00Z")
            .expect_err("bob owns the image");
        let ApplyError::Conflicts(conflicts) = error else { panic!("expected conflicts, got {error:?}") };
        assert_eq!(conflicts[0].field, ".spec.template.spec.containers[name=\"nginx\"].image");
    }

    #[test]
    fn an_update_without_changes_leaves_managed_fields_alone() {
        let live = scaled_by_other_manager();

        let result = update(&live, &live, "bob", None);

        assert_eq!(result, live);
    }

    #[test]
    fn an_explicit_empty_managed_fields_list_resets_ownership() {
        let live = scaled_by_other_manager();
        let mut cleared = live.clone();
        cleared["metadata"]["managedFields"] = json!([]);

        let result = update(&live, &cleared, "bob", None);

        assert_eq!(result["metadata"].get("managedFields"), None);
    }

    #[test]
    fn the_first_apply_to_an_unmanaged_object_conflicts_with_its_existing_fields() {
        let unmanaged = stored(deployment(1, "nginx:1.25"));

        let error = apply(Some(&unmanaged), &deployment(4, "nginx:1.25"), "alice", false, "2024-01-02T00:00:00Z")
            .expect_err("existing fields belong to before-first-apply");

        let ApplyError::Conflicts(conflicts) = error else { panic!("expected conflicts, got {error:?}") };
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].manager, "before-first-apply");
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let conflict = |manager: &str, label: &str, field: &str| Conflict {
            manager: manager.into(),
            field: field.into(),
            message: format!("conflict with {label}: {field}"),
        };
        let conflicts = [
            conflict("bob", "\"bob\" using apps/v1", ".spec.replicas"),
            conflict("bob", "\"bob\" using apps/v1", ".metadata.labels.app"),
            conflict("carol", "\"carol\"", ".spec.paused"),
        ];

        assert_eq!(
            conflicts_message(&conflicts),
            "Apply failed with 3 conflicts: conflicts with \"bob\" using apps/v1:\n- .spec.replicas\n\
             - .metadata.labels.app\nconflicts with \"carol\":\n- .spec.paused"
        );
    }

    #[test]
    fn a_configuration_that_is_not_an_object_is_invalid() {
        let error = apply(None, &json!(["not", "an", "object"]), "alice", false, "t").expect_err("invalid");

        assert!(matches!(error, ApplyError::Invalid(_)), "{error:?}");
    }

    #[test]
    fn a_map_list_element_without_its_key_is_invalid() {
        let mut applied = deployment(1, "nginx:1.25");
        applied["spec"]["template"]["spec"]["containers"] = json!([{ "image": "nginx:1.25" }]);

        let error = apply(None, &applied, "alice", false, "t").expect_err("invalid");

        assert_eq!(error, ApplyError::Invalid(".spec.template.spec.containers[0]: missing key field \"name\"".into()));
    }

    #[test]
    fn duplicate_keys_and_wrong_shapes_are_invalid() {
        let mut duplicated = deployment(1, "nginx:1.25");
        duplicated["spec"]["template"]["spec"]["containers"] =
            json!([{ "name": "nginx", "image": "a" }, { "name": "nginx", "image": "b" }]);
        let mut misshapen = deployment(1, "nginx:1.25");
        misshapen["spec"]["replicas"] = json!({ "count": 1 });

        for applied in [duplicated, misshapen] {
            let error = apply(None, &applied, "alice", false, "t").expect_err("invalid");
            assert!(matches!(error, ApplyError::Invalid(_)), "{error:?}");
        }
    }

    #[test]
    fn managed_fields_in_the_configuration_or_a_missing_manager_are_invalid() {
        let mut applied = deployment(1, "nginx:1.25");
        applied["metadata"]["managedFields"] = json!([]);

        assert!(matches!(apply(None, &applied, "alice", false, "t"), Err(ApplyError::Invalid(_))));
        assert!(matches!(apply(None, &deployment(1, "x"), "", false, "t"), Err(ApplyError::Invalid(_))));
    }

    #[test]
    fn undecodable_live_managed_fields_are_reported() {
        let mut live = stored(deployment(1, "nginx:1.25"));
        live["metadata"]["managedFields"] = json!([{ "manager": "x", "operation": "Sideways" }]);

        let error = apply(Some(&live), &deployment(1, "nginx:1.25"), "alice", false, "t").expect_err("bad entry");

        assert!(matches!(error, ApplyError::ManagedFields(_)), "{error:?}");
    }

    #[test]
    fn fields_v1_round_trips_through_the_field_set() {
        let encoded = json!({
            "f:metadata": { "f:labels": { ".": {}, "f:app": {} } },
            "f:spec": { "f:containers": { "k:{\"name\":\"nginx\"}": { ".": {}, "f:image": {} } } },
        });

        let set = FieldSet::from_fields_v1(&encoded).expect("valid FieldsV1");

        assert_eq!(set.to_fields_v1(), encoded);
        assert!(set.contains(&["f:metadata".into(), "f:labels".into()]));
        assert!(!set.contains(&["f:spec".into()]));
        assert!(FieldSet::from_fields_v1(&json!({ "x:odd": {} })).is_err());
    }

    #[test]
    fn human_paths_read_like_upstream() {
        let path: Vec<String> = ["f:spec", "f:ports", "k:{\"containerPort\":80,\"protocol\":\"TCP\"}", "f:name"]
            .into_iter()
            .map(String::from)
            .collect();

        assert_eq!(human_path(&path), ".spec.ports[containerPort=80,protocol=\"TCP\"].name");
        assert_eq!(human_path(&["f:finalizers".into(), "v:\"a\"".into()]), ".finalizers[=\"a\"]");
    }
}
