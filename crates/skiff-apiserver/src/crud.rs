//! The verbs on stored resources: get, list, create, update, patch, delete, deletecollection
//! (watch lives in `watch.rs`). Every write is a compare-and-swap against the revision read, so
//! concurrent writers on different servers never overwrite each other silently.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use base64::Engine;
use serde_json::json;
use serde_json::Value;
use skiff_api_types::apply;
use skiff_api_types::registry::Resource;
use skiff_api_types::selector::FieldSelector;
use skiff_api_types::selector::LabelSelector;
use skiff_store::Consistency;
use skiff_store::ListOptions;
use skiff_store::Precondition;
use skiff_store::Record;
use skiff_store::StoreError;

use crate::admission;
use crate::error::ApiError;
use crate::error::Cause;
use crate::fields;
use crate::objects;
use crate::output;
use crate::request::shape;
use crate::request::FieldValidation;
use crate::request::Query;
use crate::request::ResourcePath;
use crate::request::Shape;
use crate::service_ips;
use crate::state::ApiState;

/// How many times a read-modify-write is retried when another writer got in between.
const WRITE_RETRIES: usize = 8;

/// The manager recorded in managedFields for a write.
fn manager(q: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager") {
        return m.to_string();
    }
    // Upstream derives the manager from the user agent's program name.
    headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn key_of(p: &ResourcePath, name: &str) -> String {
    p.resource.key(p.namespace.as_deref(), name)
}

fn read_consistency(q: &Query) -> Consistency {
    if q.get("resourceVersion") == Some("0") {
        Consistency::Local
    } else {
        Consistency::Linearizable
    }
}

pub(crate) async fn load(
    state: &ApiState,
    p: &ResourcePath,
    name: &str,
    c: Consistency,
) -> Result<(Record, Value), ApiError> {
    let rec = state
        .store
        .get(&key_of(p, name), c)
        .await
        .map_err(|e| ApiError::from_store(e, p.resource.plural, name))?
        .ok_or_else(|| ApiError::not_found(p.resource.plural, name))?;
    let obj = objects::read(p.resource, &rec)?;
    Ok((rec, obj))
}

pub async fn get(
    state: &ApiState,
    p: &ResourcePath,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (_, obj) = load(state, p, name, read_consistency(q)).await?;
    let obj = match p.subresource.as_deref() {
        None | Some("status") => obj,
        Some("scale") => to_scale(p.resource, &obj)?,
        Some(_) => return Err(ApiError::MethodNotAllowed),
    };
    let shape = if p.subresource.as_deref() == Some("scale") { Shape::Object } else { shape(headers) };
    output::object(p.resource, &obj, shape, q, StatusCode::OK, &[])
}

/// Selectors of a list or watch, checked.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn from_query(r: &Resource, q: &Query) -> Result<Self, ApiError> {
        let labels = match q.get("labelSelector") {
            Some(s) => LabelSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            None => LabelSelector::everything(),
        };
        let fields = match q.get("fieldSelector") {
            Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            None => FieldSelector::everything(),
        };
        fields::check_supported(r, fields.fields())?;
        Ok(Self { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, r: &Resource, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches(|f| fields::value(r, obj, f))
    }
}

/// The opaque `continue` token: where the next page starts and at what revision the list began.
fn encode_continue(rv: u64, after: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": after}).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String), ApiError> {
    let bad = || ApiError::BadRequest("continue key is not valid: the token is malformed".into());
    let raw = base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?.to_string();
    Ok((rv, start))
}

/// The paging and consistency parameters of a list, checked.
struct Paging {
    limit: Option<usize>,
    after: Option<String>,
    consistency: Consistency,
}

impl Paging {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        let limit = match q.number("limit")? {
            Some(n) if n > 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Some(n) if n < 0 => return Err(ApiError::BadRequest("limit must not be negative".into())),
            _ => None,
        };
        if q.get("resourceVersionMatch") == Some("Exact") {
            // Only the latest state is kept, so a list at an exact older revision cannot be served.
            let requested = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
            return Err(ApiError::Expired { requested, oldest: 0 });
        }
        match q.get("continue") {
            Some(token) => {
                Ok(Self { limit, after: Some(decode_continue(token)?.1), consistency: Consistency::Linearizable })
            }
            None => Ok(Self { limit, after: None, consistency: read_consistency(q) }),
        }
    }
}

/// Lists matching objects: returns them with the list revision and the continue token.
pub async fn list_objects(
    state: &ApiState,
    p: &ResourcePath,
    q: &Query,
    sel: &Selectors,
) -> Result<(Vec<Value>, u64, Option<String>), ApiError> {
    let r = p.resource;
    let Paging { limit, mut after, consistency } = Paging::from_query(q)?;
    let prefix = r.list_prefix(p.namespace.as_deref());
    let mut items = Vec::new();
    let mut revision = 0;
    loop {
        // Filtering happens here, so ask for more than the limit when selectors may drop items.
        let page_size = limit.map(|l| if sel.is_empty() { l - items.len() } else { (l * 2).max(256) });
        let page = state
            .store
            .list(&prefix, ListOptions { limit: page_size, continue_after: after.clone(), consistency })
            .await
            .map_err(|e| ApiError::from_store(e, r.plural, ""))?;
        if revision == 0 {
            revision = page.revision;
        }
        let n = page.items.len();
        for (i, rec) in page.items.iter().enumerate() {
            let obj = objects::read(r, rec)?;
            if sel.matches(r, &obj) {
                items.push(obj);
            }
            if limit.is_some_and(|l| items.len() >= l) {
                let more = i + 1 < n || page.continue_after.is_some();
                let token = more.then(|| encode_continue(revision, &rec.key));
                return Ok((items, revision, token));
            }
        }
        match page.continue_after {
            Some(next) => after = Some(next),
            None => return Ok((items, revision, None)),
        }
    }
}

pub async fn list(state: &ApiState, p: &ResourcePath, q: &Query, headers: &HeaderMap) -> Result<Response, ApiError> {
    let sel = Selectors::from_query(p.resource, q)?;
    let r = p.resource;
    let wanted = shape(headers);
    if wanted == Shape::Object && sel.is_empty() {
        return list_raw(state, p, q).await;
    }
    let (items, revision, token) = list_objects(state, p, q, &sel).await?;
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let Some(t) = token {
        meta["continue"] = t.into();
    }
    match wanted {
        Shape::Table => {
            let include = output::IncludeObject::from_query(q)?;
            Ok(output::json_with(StatusCode::OK, output::TABLE_CONTENT_TYPE, &output::table(r, &items, meta, include)))
        }
        Shape::PartialMetadata => {
            let items: Vec<Value> = items.iter().map(output::partial_metadata).collect();
            let list = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items});
            Ok(output::json_with(StatusCode::OK, "application/json", &list))
        }
        Shape::Object => {
            let list = json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": meta, "items": items});
            Ok(output::json_with(StatusCode::OK, "application/json", &list))
        }
    }
}

/// A plain list without selectors, assembled from the stored bytes without parsing each object
/// (the common case for controllers and `-o json`, and what makes large lists cheap).
async fn list_raw(state: &ApiState, p: &ResourcePath, q: &Query) -> Result<Response, ApiError> {
    let r = p.resource;
    let Paging { limit, after, consistency } = Paging::from_query(q)?;
    let page = state
        .store
        .list(&r.list_prefix(p.namespace.as_deref()), ListOptions { limit, continue_after: after, consistency })
        .await
        .map_err(|e| ApiError::from_store(e, r.plural, ""))?;
    let mut meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(next) = &page.continue_after {
        meta["continue"] = encode_continue(page.revision, next).into();
    }
    let mut body = Vec::with_capacity(page.items.iter().map(|i| i.value.len() + 32).sum::<usize>() + 256);
    body.extend_from_slice(
        format!("{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{meta},\"items\":[", r.kind, r.api_version())
            .as_bytes(),
    );
    for (i, rec) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&objects::read_json(r, rec)?);
    }
    body.extend_from_slice(b"]}");
    Ok(([("content-type", "application/json")], body).into_response())
}

/// Checks that the namespace of a new object exists and is not being deleted.
async fn check_namespace_open(state: &ApiState, r: &Resource, ns: &str) -> Result<(), ApiError> {
    let key = [crate::namespaces::KEY_PREFIX, ns].concat();
    // The local copy answers almost always; only a miss needs the linearizable read (a namespace
    // created a moment ago through another server).
    let mut rec =
        state.store.get(&key, Consistency::Local).await.map_err(|e| ApiError::from_store(e, "namespaces", ns))?;
    if rec.is_none() {
        rec = state
            .store
            .get(&key, Consistency::Linearizable)
            .await
            .map_err(|e| ApiError::from_store(e, "namespaces", ns))?;
    }
    let Some(rec) = rec else {
        return Err(ApiError::not_found("namespaces", ns));
    };
    let open = match state.namespace_verdicts.get(ns, rec.revision) {
        Some(open) => open,
        None => {
            let open = namespace_takes_objects(ns, &rec.value)?;
            state.namespace_verdicts.remember(ns, rec.revision, open);
            open
        }
    };
    if !open {
        return Err(ApiError::Forbidden(format!(
            "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            r.plural
        )));
    }
    Ok(())
}

/// Whether a stored namespace takes new objects: not once it is being deleted.
fn namespace_takes_objects(ns: &str, stored: &[u8]) -> Result<bool, ApiError> {
    // Only two fields matter here; reading just those spares building the whole object.
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Probe {
        metadata: ProbeMeta,
        status: ProbeStatus,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct ProbeMeta {
        deletion_timestamp: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct ProbeStatus {
        phase: Option<String>,
    }
    let probe: Probe = serde_json::from_slice(stored)
        .map_err(|e| ApiError::Internal(format!("stored namespace {ns} is not readable: {e}")))?;
    Ok(probe.status.phase.as_deref() != Some("Terminating")
        && probe.metadata.deletion_timestamp.is_none_or(|t| t.is_empty()))
}

pub async fn create(
    state: &ApiState,
    p: &ResourcePath,
    q: &Query,
    headers: &HeaderMap,
    raw: &[u8],
    user: Option<&crate::authn::UserInfo>,
) -> Result<Response, ApiError> {
    let r = p.resource;
    let (mut obj, duplicates) = crate::body::decode_object_noting_duplicates(headers, raw)?;
    admission::check_kind(r, &mut obj)?;
    let warnings = admission::check_shape(r, &obj, duplicates, FieldValidation::from_query(q)?)?;
    if r.storage == skiff_api_types::registry::Storage::Virtual {
        let answer = crate::reviews::answer(state, user, r, obj).await?;
        return output::object(r, &answer, Shape::Object, q, StatusCode::CREATED, &warnings);
    }
    admission::check_namespace(r, &mut obj, p.namespace.as_deref())?;
    if let Some(user) = user {
        admission::node_restriction(user, r, &obj)?;
    }
    admission::prepare_create(r, &mut obj)?;
    let dry_run = q.dry_run()?;
    let created = create_object(state, r, obj, &manager(q, headers), dry_run).await?;
    created.respond(r, shape(headers), q, &warnings)
}

/// What a create produced.
enum Created {
    /// A dry run: the object as it would have been stored.
    DryRun(Value),
    /// What the store wrote.
    Stored(Record),
}

impl Created {
    /// The 201 answer. A plain JSON answer is the stored bytes with the revision spliced in,
    /// which spares encoding the object a second time.
    /// Other shapes (a Table, metadata only) parse the stored bytes again: they are rare, and
    /// keeping the object's tree for them would cost every create.
    fn respond(self, r: &Resource, shape: Shape, q: &Query, warnings: &[String]) -> Result<Response, ApiError> {
        let obj = match (shape, self) {
            (Shape::Object, Created::Stored(record)) => {
                let mut resp =
                    (StatusCode::CREATED, [("content-type", "application/json")], objects::read_json(r, &record)?)
                        .into_response();
                output::add_warnings(&mut resp, warnings);
                return Ok(resp);
            }
            (_, Created::Stored(record)) => objects::read(r, &record)?,
            (_, Created::DryRun(obj)) => obj,
        };
        output::object(r, &obj, shape, q, StatusCode::CREATED, warnings)
    }
}

/// Defaults, validates, records the manager and stores a new object (already carrying
/// server metadata); returns it as stored.
async fn create_object(
    state: &ApiState,
    r: &Resource,
    mut obj: Value,
    manager: &str,
    dry_run: bool,
) -> Result<Created, ApiError> {
    let name = objects::name_of(&obj).to_string();
    if let Some(ns) = objects::meta_str(&obj, "namespace") {
        check_namespace_open(state, r, ns).await?;
    }
    if (r.group, r.plural) == ("", "pods") && state.config.service_accounts.is_some() {
        admission::mount_service_account_token(&mut obj, &objects::random_suffix());
    }
    admission::default_and_validate(r, &mut obj, None)?;
    crate::authz::escalation::check(state, r, &obj)?;
    apply::record_update(None, &mut obj, manager, None, state.schemas, r.schema, &objects::now());
    if dry_run {
        return Ok(Created::DryRun(obj));
    }
    let mut claimed = Vec::new();
    if (r.group, r.kind) == ("", "Service") {
        let owner = format!("{}/{}", objects::meta_str(&obj, "namespace").unwrap_or(""), name);
        claimed = service_ips::allocate(state.store.as_ref(), &state.config.service_network, &mut obj, &owner).await?;
    }
    let uid = objects::meta_str(&obj, "uid").unwrap_or("").to_string();
    let key = r.key(objects::meta_str(&obj, "namespace"), &name);
    let bytes = objects::write_bytes(r, &obj)?;
    // Freed here, on the thread that built it, rather than after the write on whichever thread
    // resumes the request: freeing a tree across threads cost more than building the answer.
    drop(obj);
    match state.store.create(&key, bytes, &uid).await {
        Ok(rec) => Ok(Created::Stored(rec)),
        Err(e) => {
            if !e.is_indeterminate() {
                service_ips::release(state.store.as_ref(), &claimed).await;
            }
            Err(ApiError::from_store(e, r.plural, &name))
        }
    }
}

pub async fn update(
    state: &ApiState,
    p: &ResourcePath,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Response, ApiError> {
    let r = p.resource;
    let (mut body, duplicates) = crate::body::decode_object_noting_duplicates(headers, raw)?;
    if p.subresource.as_deref() == Some("scale") {
        let sent = body.clone();
        let manager = manager(q, headers);
        let updated = write_with_retries(state, p, name, q, &manager, |current| from_scale(current, &sent)).await?;
        return output::object(r, &to_scale(r, &updated)?, Shape::Object, q, StatusCode::OK, &[]);
    }
    admission::check_kind(r, &mut body)?;
    let warnings = admission::check_shape(r, &body, duplicates, FieldValidation::from_query(q)?)?;
    admission::check_namespace(r, &mut body, p.namespace.as_deref())?;
    if objects::name_of(&body) != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            objects::name_of(&body)
        )));
    }
    let manager = manager(q, headers);
    let updated = write_with_retries(state, p, name, q, &manager, |_| Ok(body.clone())).await?;
    output::object(r, &updated, shape(headers), q, StatusCode::OK, &warnings)
}

/// Reads the object, computes the new version with `change`, and writes it with a
/// compare-and-swap on the revision read. A client-sent resourceVersion is a precondition that
/// fails with 409; a lost race with another writer is retried.
pub async fn write_with_retries(
    state: &ApiState,
    p: &ResourcePath,
    name: &str,
    q: &Query,
    manager: &str,
    mut change: impl FnMut(&Value) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let r = p.resource;
    let dry_run = q.dry_run()?;
    for _ in 0..WRITE_RETRIES {
        let (rec, current) = load(state, p, name, Consistency::Linearizable).await?;
        let mut new = change(&current)?;
        if let Some(rv) = objects::resource_version(&new)? {
            if rv != rec.revision {
                return Err(ApiError::from_store(
                    StoreError::Conflict { key: rec.key.clone(), reason: String::new() },
                    r.plural,
                    name,
                ));
            }
        }
        objects::set_meta(&mut new, "name", name.into());
        if let Some(ns) = &p.namespace {
            objects::set_meta(&mut new, "namespace", ns.clone().into());
        }
        let binding = p.subresource.as_deref() == Some("binding");
        let subresource = if binding { None } else { p.subresource.as_deref() };
        // A binding also writes the PodScheduled condition, which a spec write would drop.
        let bound_status = if binding { new.get("status").cloned() } else { None };
        admission::prepare_update(r, &current, &mut new, subresource);
        if let Some(status) = bound_status {
            new["status"] = status;
        }
        // A binding is the one way a pod's node may change; validate it as if it always had it.
        let mut old = current.clone();
        if binding {
            old["spec"]["nodeName"] = new["spec"]["nodeName"].clone();
        }
        admission::default_and_validate(r, &mut new, Some(&old))?;
        crate::authz::escalation::check(state, r, &new)?;
        apply::record_update(Some(&current), &mut new, manager, subresource, state.schemas, r.schema, &objects::now());
        objects::set_meta(&mut new, "resourceVersion", rec.revision.to_string().into());
        // An unchanged object is still rewritten when its stored form is stale (a Secret stored
        // in plaintext or under an old encryption key), so `kubectl replace` re-encrypts.
        if (new == current && !state.store.needs_rewrite(&rec).await) || dry_run {
            // Nothing changed: upstream answers without writing, and the revision stays.
            return Ok(new);
        }
        let finished = finishes_deletion(&new);
        let result = if finished {
            state.store.delete(&rec.key, Precondition::revision(rec.revision)).await
        } else {
            state.store.update(&rec.key, objects::write_bytes(r, &new)?, Precondition::revision(rec.revision)).await
        };
        match result {
            Ok(written) => {
                if finished {
                    after_delete(state, r, &current).await;
                    let mut gone = objects::read(r, &written)?;
                    objects::set_meta(&mut gone, "resourceVersion", written.revision.to_string().into());
                    return Ok(gone);
                }
                return objects::read(r, &written);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(e, r.plural, name)),
        }
    }
    Err(ApiError::Conflict {
        kind: r.plural.into(),
        name: name.into(),
        message: format!(
            "Operation cannot be fulfilled on {} \"{name}\": too many concurrent writers; try again",
            r.plural
        ),
        causes: Vec::new(),
    })
}

/// An object marked for deletion whose last finalizer was just removed is deleted for good (a
/// namespace once its `spec.finalizers` are gone too).
fn finishes_deletion(obj: &Value) -> bool {
    objects::meta_str(obj, "deletionTimestamp").is_some()
        && objects::meta(obj).and_then(|m| m.get("finalizers")).and_then(Value::as_array).is_none_or(Vec::is_empty)
        && obj.get("kind").and_then(Value::as_str) != Some("Pod")
        && !namespace_finalizers_pending(obj)
}

/// Whether a namespace still has finalizers in its `spec` (the namespace controller's).
fn namespace_finalizers_pending(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Namespace")
        && obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty())
}

pub async fn patch(
    state: &ApiState,
    p: &ResourcePath,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Response, ApiError> {
    let r = p.resource;
    let media = crate::body::media_type(headers);
    let manager = manager(q, headers);
    let force = q.flag("force");
    if media == "application/apply-patch+yaml" {
        if q.get("fieldManager").is_none() {
            return Err(ApiError::BadRequest("PATCH with apply requires the fieldManager parameter".into()));
        }
    } else if force {
        return Err(ApiError::BadRequest("force is only allowed for apply patches".into()));
    }
    let patch_doc = match media.as_str() {
        "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            crate::body::parse_json(raw)?
        }
        "application/apply-patch+yaml" => crate::body::parse_yaml(raw)?,
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                accepted: "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml".into(),
            })
        }
    };
    let mode = FieldValidation::from_query(q)?;
    if media == "application/apply-patch+yaml" && p.subresource.is_none() {
        return apply_patch(state, p, name, q, headers, patch_doc, &manager, force, mode).await;
    }
    let scale = p.subresource.as_deref() == Some("scale");
    let mut warnings = Vec::new();
    let updated = write_with_retries(state, p, name, q, &manager, |current| {
        let base = if scale { to_scale(r, current)? } else { current.clone() };
        let patched = apply_patch_doc(state, r, &media, &base, &patch_doc, scale)?;
        if scale {
            return from_scale(current, &patched);
        }
        let mut patched = patched;
        admission::check_kind(r, &mut patched)?;
        warnings = admission::check_shape(r, &patched, Vec::new(), mode)?;
        Ok(patched)
    })
    .await?;
    if scale {
        return output::object(r, &to_scale(r, &updated)?, Shape::Object, q, StatusCode::OK, &[]);
    }
    output::object(r, &updated, shape(headers), q, StatusCode::OK, &warnings)
}

fn apply_patch_doc(
    state: &ApiState,
    r: &Resource,
    media: &str,
    base: &Value,
    patch: &Value,
    scale: bool,
) -> Result<Value, ApiError> {
    let bad = |e: String| ApiError::BadRequest(e);
    match media {
        "application/json-patch+json" => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| bad(format!("the JSON patch is not a list of operations: {e}")))?;
            let mut doc = base.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::invalid(
                    r.group,
                    r.kind,
                    objects::name_of(base),
                    vec![Cause {
                        reason: "FieldValueInvalid".into(),
                        message: format!("the JSON patch could not be applied: {e}"),
                        field: String::new(),
                    }],
                )
            })?;
            Ok(doc)
        }
        "application/merge-patch+json" => {
            if !patch.is_object() {
                return Err(bad("a merge patch must be a JSON object".into()));
            }
            let mut doc = base.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        _ => {
            let root = if scale { "io.k8s.api.autoscaling.v1.Scale" } else { r.schema };
            skiff_api_types::strategic::strategic_merge_patch(base, patch, state.schemas, root)
                .map_err(|e| bad(e.to_string()))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_patch(
    state: &ApiState,
    p: &ResourcePath,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    mut applied: Value,
    manager: &str,
    force: bool,
    mode: FieldValidation,
) -> Result<Response, ApiError> {
    let r = p.resource;
    admission::check_kind(r, &mut applied)?;
    let warnings = admission::check_shape(r, &applied, Vec::new(), mode)?;
    if !objects::name_of(&applied).is_empty() && objects::name_of(&applied) != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            objects::name_of(&applied)
        )));
    }
    objects::set_meta(&mut applied, "name", name.into());
    admission::check_namespace(r, &mut applied, p.namespace.as_deref())?;
    let to_api_error = |e: apply::ApplyError| match e {
        apply::ApplyError::Conflicts(conflicts) => ApiError::Conflict {
            kind: r.plural.into(),
            name: name.into(),
            message: apply::conflicts_message(&conflicts),
            causes: conflicts
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: c.cause_message(),
                    field: c.field.clone(),
                })
                .collect(),
        },
        other => ApiError::BadRequest(other.to_string()),
    };
    // Apply to a missing object creates it.
    let key = key_of(p, name);
    let existing =
        state.store.get(&key, Consistency::Linearizable).await.map_err(|e| ApiError::from_store(e, r.plural, name))?;
    if existing.is_none() {
        let mut obj =
            apply::server_side_apply(None, &applied, manager, force, state.schemas, r.schema, &objects::now())
                .map_err(to_api_error)?;
        objects::remove_meta(&mut obj, "resourceVersion");
        admission::prepare_create(r, &mut obj)?;
        let created = create_object(state, r, obj, manager, q.dry_run()?).await;
        match created {
            Ok(created) => return created.respond(r, shape(headers), q, &warnings),
            // Someone created it between our read and write: apply onto theirs.
            Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let updated = write_with_retries(state, p, name, q, manager, |current| {
        let mut merged =
            apply::server_side_apply(Some(current), &applied, manager, force, state.schemas, r.schema, &objects::now())
                .map_err(to_api_error)?;
        if objects::resource_version(&applied)?.is_none() {
            objects::set_meta(
                &mut merged,
                "resourceVersion",
                objects::meta_str(current, "resourceVersion").unwrap_or("").into(),
            );
        }
        Ok(merged)
    })
    .await?;
    output::object(r, &updated, shape(headers), q, StatusCode::OK, &warnings)
}

/// The `autoscaling/v1` Scale view of a deployment or replica set.
fn to_scale(r: &Resource, obj: &Value) -> Result<Value, ApiError> {
    if r.subresource("scale").is_none() {
        return Err(ApiError::NoRoute);
    }
    let selector = match obj.pointer("/spec/selector") {
        Some(s) => LabelSelector::from_object(s).map(|s| s.to_string()).unwrap_or_default(),
        None => String::new(),
    };
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": objects::name_of(obj),
            "namespace": objects::meta_str(obj, "namespace"),
            "uid": objects::meta_str(obj, "uid"),
            "resourceVersion": objects::meta_str(obj, "resourceVersion"),
            "creationTimestamp": objects::meta_str(obj, "creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    }))
}

/// Writes a Scale's replicas back into the object (carrying its resourceVersion precondition).
fn from_scale(current: &Value, scale: &Value) -> Result<Value, ApiError> {
    let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).ok_or_else(|| {
        ApiError::invalid(
            "autoscaling",
            "Scale",
            objects::name_of(current),
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: spec.replicas must be an integer".into(),
                field: "spec.replicas".into(),
            }],
        )
    })?;
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            objects::name_of(current),
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        ));
    }
    let mut new = current.clone();
    new["spec"]["replicas"] = replicas.into();
    match objects::meta_str(scale, "resourceVersion") {
        Some(rv) => objects::set_meta(&mut new, "resourceVersion", rv.into()),
        None => objects::remove_meta(&mut new, "resourceVersion"),
    }
    Ok(new)
}

/// DeleteOptions from the body and the query.
struct DeleteOptions {
    grace: Option<i64>,
    /// Foreground and Orphan become a finalizer the garbage collector acts on; Background (the
    /// default) needs nothing: the collector finds the dependents whose owner is gone.
    propagation: Option<String>,
    uid: Option<String>,
    revision: Option<u64>,
    dry_run: bool,
}

fn delete_options(q: &Query, raw: &[u8]) -> Result<DeleteOptions, ApiError> {
    let body: Value = if raw.iter().all(u8::is_ascii_whitespace) { json!({}) } else { crate::body::parse_json(raw)? };
    let grace = match body.get("gracePeriodSeconds").and_then(Value::as_i64) {
        Some(g) => Some(g),
        None => q.number("gracePeriodSeconds")?,
    };
    let orphan_dependents = body
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| q.get("orphanDependents").map(|v| v == "true"));
    let propagation = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| q.get("propagationPolicy").map(str::to_string))
        .or_else(|| match orphan_dependents {
            Some(true) => Some("Orphan".to_string()),
            Some(false) => Some("Background".to_string()),
            None => None,
        });
    if let Some(p) = &propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::BadRequest(format!(
                "propagationPolicy {p:?} is not one of Orphan, Background, Foreground"
            )));
        }
    }
    let uid = body.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
    let revision = match body.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
        Some(rv) => Some(objects::parse_rv(rv)?),
        None => None,
    };
    let dry_run =
        q.dry_run()? || body.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions { grace, propagation, uid, revision, dry_run })
}

pub async fn delete(
    state: &Arc<ApiState>,
    p: &ResourcePath,
    name: &str,
    q: &Query,
    raw: &[u8],
) -> Result<Response, ApiError> {
    let opts = delete_options(q, raw)?;
    let obj = delete_one(state, p, name, &opts).await?;
    output::object(p.resource, &obj, Shape::Object, q, StatusCode::OK, &[])
}

async fn delete_one(
    state: &Arc<ApiState>,
    p: &ResourcePath,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let r = p.resource;
    for _ in 0..WRITE_RETRIES {
        let (rec, current) = load(state, p, name, Consistency::Linearizable).await?;
        if let Some(uid) = &opts.uid {
            if uid != objects::meta_str(&current, "uid").unwrap_or("") {
                return Err(precondition_failed(
                    r,
                    name,
                    format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        objects::meta_str(&current, "uid").unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(rv) = opts.revision {
            if rv != rec.revision {
                return Err(precondition_failed(r, name, format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", rec.revision)));
            }
        }
        if opts.dry_run {
            return Ok(current);
        }
        if let Some(marked) = graceful_mark(r, &current, opts) {
            if marked == current {
                return Ok(current);
            }
            match state
                .store
                .update(&rec.key, objects::write_bytes(r, &marked)?, Precondition::revision(rec.revision))
                .await
            {
                Ok(written) => return objects::read(r, &written),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, r.plural, name)),
            }
        }
        match state.store.delete(&rec.key, Precondition { revision: Some(rec.revision), uid: None }).await {
            Ok(deleted) => {
                after_delete(state, r, &current).await;
                let mut obj = objects::read(r, &deleted)?;
                objects::set_meta(&mut obj, "resourceVersion", deleted.revision.to_string().into());
                return Ok(obj);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(e, r.plural, name)),
        }
    }
    Err(precondition_failed(r, name, "too many concurrent writers; try again".into()))
}

fn precondition_failed(r: &Resource, name: &str, message: String) -> ApiError {
    ApiError::Conflict { kind: r.plural.into(), name: name.into(), message, causes: Vec::new() }
}

/// When deletion must wait (finalizers, a namespace's contents, a running pod's grace period),
/// the object marked for deletion; `None` when it can go now.
fn graceful_mark(r: &Resource, current: &Value, opts: &DeleteOptions) -> Option<Value> {
    let already = objects::meta_str(current, "deletionTimestamp").is_some();
    let is_namespace = r.group.is_empty() && r.kind == "Namespace";
    let mut current = std::borrow::Cow::Borrowed(current);
    if let Some(finalizer) = gc_finalizer(opts.propagation.as_deref()).filter(|_| !already && !is_namespace) {
        let owned = current.to_mut();
        let list = &mut owned["metadata"]["finalizers"];
        if !list.is_array() {
            *list = json!([]);
        }
        if let Some(list) = list.as_array_mut() {
            if !list.iter().any(|f| f == finalizer) {
                list.push(finalizer.into());
            }
        }
    }
    let current = current.as_ref();
    let has_finalizers = objects::meta(current)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let bound_pod = r.group.is_empty()
        && r.kind == "Pod"
        && current.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty())
        && !matches!(current.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
    let grace = if bound_pod {
        opts.grace
            .or_else(|| current.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30)
    } else {
        0
    };
    // A namespace waits for the namespace controller while `kubernetes` is in its spec.finalizers.
    let namespace_waits =
        is_namespace && current.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    let waits = has_finalizers || namespace_waits || (bound_pod && grace > 0);
    if !waits {
        return None;
    }
    let mut marked = current.clone();
    if !already {
        let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace.max(0));
        objects::set_meta(&mut marked, "deletionTimestamp", format!("{}", when.strftime("%Y-%m-%dT%H:%M:%SZ")).into());
        objects::set_meta(&mut marked, "deletionGracePeriodSeconds", grace.max(0).into());
    } else if bound_pod {
        // A shorter grace period may cut a pending one, never lengthen it.
        let old = current.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(grace);
        if grace < old {
            objects::set_meta(&mut marked, "deletionGracePeriodSeconds", grace.max(0).into());
        }
    }
    if is_namespace {
        marked["status"]["phase"] = "Terminating".into();
    }
    Some(marked)
}

/// The finalizer through which the garbage collector carries out a propagation policy.
fn gc_finalizer(propagation: Option<&str>) -> Option<&'static str> {
    match propagation {
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        _ => None,
    }
}

/// What a deletion frees besides the object itself.
async fn after_delete(state: &ApiState, r: &Resource, obj: &Value) {
    if (r.group, r.kind) == ("", "Service") {
        service_ips::release(state.store.as_ref(), &service_ips::held_by(obj)).await;
    }
}

pub async fn delete_collection(
    state: &Arc<ApiState>,
    p: &ResourcePath,
    q: &Query,
    raw: &[u8],
) -> Result<Response, ApiError> {
    let sel = Selectors::from_query(p.resource, q)?;
    let opts = delete_options(q, raw)?;
    let (items, revision, _) = list_objects(state, p, &Query::parse(None), &sel).await?;
    let mut deleted = Vec::new();
    for item in items {
        let name = objects::name_of(&item).to_string();
        let ns = objects::meta_str(&item, "namespace").map(str::to_string);
        let path = ResourcePath { resource: p.resource, namespace: ns, name: Some(name.clone()), subresource: None };
        match delete_one(state, &path, &name, &opts).await {
            Ok(obj) => deleted.push(obj),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let r = p.resource;
    let list = json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(),
        "metadata": {"resourceVersion": revision.to_string()}, "items": deleted});
    Ok(output::json_with(StatusCode::OK, "application/json", &list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/registry/core/pods/default/web");
        assert_eq!(decode_continue(&t).expect("valid"), (42, "/registry/core/pods/default/web".to_string()));
        assert!(decode_continue("not base64!").is_err());
        assert!(decode_continue(&base64::engine::general_purpose::STANDARD.encode("{}")).is_err());
    }
}
