//! Service-account tokens: JWTs (ES256) signed with the cluster's service-account key, issued by
//! the TokenRequest API (`POST .../serviceaccounts/NAME/token`, what `kubectl create token` and
//! agents use) and accepted as bearer tokens.
//!
//! A token names its account (`sub` = `system:serviceaccount:NS:NAME`, and the account's uid),
//! has audiences and an expiry, and may be bound to a Pod or a Secret. It authenticates only
//! while it is unexpired, is meant for one of this server's API audiences, its account still
//! exists with the same uid, and its bound object still exists with the same uid — so deleting
//! the pod revokes the token it was given. The claims follow upstream's layout (`kubernetes.io`
//! holding namespace, serviceaccount, pod or secret, and node).

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::Header;
use jsonwebtoken::Validation;
use serde::Deserialize;
use serde::Serialize;
use serde_json::json;
use serde_json::Value;
use skiff_api_types::registry;
use skiff_store::Consistency;
use skiff_store::Store;

use crate::authn::UserInfo;
use crate::error::ApiError;
use crate::error::Cause;

/// Upstream's default issuer, also the default API audience.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Requested lifetimes shorter than this are refused (upstream's minimum).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The lifetime of a token whose request does not say.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The longest lifetime issued; longer requests are cut to it.
pub const MAX_EXPIRATION_SECONDS: i64 = 48 * 3600;

/// Why the key files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// A key file is not an EC P-256 PEM key of the expected kind.
    #[error("{path} is not a usable ECDSA P-256 key: {reason}")]
    Parse { path: String, reason: String },
}

/// Why a bearer token is not a valid service-account token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not signed by our key, malformed, expired, not yet valid, or for another issuer or audience.
    #[error("invalid service account token: {0}")]
    Invalid(String),
    /// The account or the object the token is bound to is gone, or was replaced (uid changed).
    #[error("service account token revoked: {0}")]
    Revoked(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// Signs and verifies service-account tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub issuer: String,
    /// The audiences this API server accepts; also the default audiences of a token request.
    pub api_audiences: Vec<String>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").field("issuer", &self.issuer).field("api_audiences", &self.api_audiences).finish()
    }
}

impl TokenIssuer {
    /// From the PKI's `sa.key` (PKCS#8 PEM) and `sa.pub` (SubjectPublicKeyInfo PEM).
    pub fn from_files(
        signing_key: &Path,
        public_key: &Path,
        issuer: &str,
        api_audiences: Vec<String>,
    ) -> Result<Self, KeyError> {
        let read =
            |p: &Path| std::fs::read(p).map_err(|source| KeyError::Read { path: p.display().to_string(), source });
        let bad = |p: &Path, e: jsonwebtoken::errors::Error| KeyError::Parse {
            path: p.display().to_string(),
            reason: e.to_string(),
        };
        let encoding = EncodingKey::from_ec_pem(&read(signing_key)?).map_err(|e| bad(signing_key, e))?;
        let decoding = DecodingKey::from_ec_pem(&read(public_key)?).map_err(|e| bad(public_key, e))?;
        let api_audiences = if api_audiences.is_empty() { vec![issuer.to_string()] } else { api_audiences };
        Ok(Self { encoding, decoding, issuer: issuer.to_string(), api_audiences })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))
    }

    /// The claims of a token signed by us, for us, and valid now. Says nothing about revocation.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.api_audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// The user a bearer token authenticates as: verified, then checked against the store (the
    /// account and the bound object exist with the uids the token names).
    pub async fn authenticate(&self, store: &dyn Store, token: &str) -> Result<UserInfo, TokenError> {
        let claims = self.verify(token)?;
        let k = &claims.kubernetes;
        let ns = k.namespace.as_str();
        let expected_sub = format!("system:serviceaccount:{ns}:{}", k.serviceaccount.name);
        if claims.sub != expected_sub {
            return Err(TokenError::Invalid("the subject does not name the service account".into()));
        }
        still_exists(store, "serviceaccounts", ns, &k.serviceaccount).await?;
        if let Some(pod) = &k.pod {
            still_exists(store, "pods", ns, pod).await?;
        }
        if let Some(secret) = &k.secret {
            still_exists(store, "secrets", ns, secret).await?;
        }
        let groups = vec!["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{ns}")];
        Ok(UserInfo::new(&claims.sub, &k.serviceaccount.uid, &groups))
    }
}

/// `Ok` when the object a token names exists with the uid the token names.
async fn still_exists(store: &dyn Store, plural: &'static str, ns: &str, r: &Ref) -> Result<(), TokenError> {
    match core_object(store, plural, ns, &r.name).await {
        Ok(Some(record)) if record.uid == r.uid => Ok(()),
        Ok(Some(_)) => Err(TokenError::Revoked(format!("{plural} {ns}/{} was replaced", r.name))),
        Ok(None) => Err(TokenError::Revoked(format!("{plural} {ns}/{} no longer exists", r.name))),
        Err(e) => Err(TokenError::Revoked(format!("cannot check {plural} {ns}/{}: {e}", r.name))),
    }
}

/// The stored record of a core/v1 object, read linearizably (`namespace` is ignored for
/// cluster-scoped resources).
async fn core_object(
    store: &dyn Store,
    plural: &'static str,
    namespace: &str,
    name: &str,
) -> Result<Option<skiff_store::Record>, skiff_store::StoreError> {
    let resource = registry::find("", "v1", plural)
        .ok_or_else(|| skiff_store::StoreError::Internal(format!("no {plural} resource in the registry")))?;
    store.get(&resource.key(Some(namespace), name), Consistency::Linearizable).await
}

fn invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        name,
        vec![Cause { reason: "FieldValueInvalid".into(), message, field: field.into() }],
    )
}

/// `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`: answers the TokenRequest `request`
/// with a signed token in `status`.
pub async fn token_request(
    issuer: &TokenIssuer,
    store: &dyn Store,
    namespace: &str,
    account: &str,
    mut request: Value,
    node: Option<&str>,
) -> Result<Value, ApiError> {
    let kind = request.get("kind").and_then(Value::as_str).unwrap_or("TokenRequest");
    if kind != "TokenRequest" {
        return Err(ApiError::BadRequest(format!("expected a TokenRequest, got {kind}")));
    }
    let get = |plural: &'static str, name: String| async move {
        let record =
            core_object(store, plural, namespace, &name).await.map_err(|e| ApiError::from_store(e, plural, &name))?;
        Ok::<_, ApiError>(record.and_then(|r| serde_json::from_slice::<Value>(&r.value).ok()))
    };
    let sa = get("serviceaccounts", account.to_string())
        .await?
        .ok_or_else(|| ApiError::NotFound { kind: "serviceaccounts".into(), name: account.into() })?;
    let sa_uid = crate::objects::meta_str(&sa, "uid").unwrap_or("").to_string();
    let spec = request.get("spec").cloned().unwrap_or(Value::Null);
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| issuer.api_audiences.clone());
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| invalid(account, "spec.expirationSeconds", "must be an integer number of seconds".into()))?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            account,
            "spec.expirationSeconds",
            format!("may not specify a duration less than {} minutes", MIN_EXPIRATION_SECONDS / 60),
        ));
    }
    let expiration = expiration.min(MAX_EXPIRATION_SECONDS);
    let bound_kind = spec.pointer("/boundObjectRef/kind").and_then(Value::as_str).unwrap_or("");
    if let (Some(node), false) = (node, bound_kind == "Pod") {
        return Err(ApiError::Forbidden(format!("node {node:?} may request tokens only bound to pods that run on it")));
    }
    let mut kubernetes = KubernetesClaims {
        namespace: namespace.to_string(),
        serviceaccount: Ref { name: account.to_string(), uid: sa_uid },
        ..Default::default()
    };
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| b.is_object()) {
        let text = |f: &str| bound.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        let (kind, name, uid) = (text("kind"), text("name"), text("uid"));
        let plural = match kind.as_str() {
            "Pod" => "pods",
            "Secret" => "secrets",
            other => {
                return Err(invalid(
                    account,
                    "spec.boundObjectRef.kind",
                    format!("{other:?}: supported values: \"Pod\", \"Secret\""),
                ))
            }
        };
        let object = get(plural, name.clone())
            .await?
            .ok_or_else(|| ApiError::NotFound { kind: plural.into(), name: name.clone() })?;
        let actual_uid = crate::objects::meta_str(&object, "uid").unwrap_or("").to_string();
        if !uid.is_empty() && uid != actual_uid {
            return Err(ApiError::Conflict {
                kind: plural.into(),
                name: name.clone(),
                message: format!(
                    "the UID in the bound object reference ({uid}) does not match the {plural} {name} ({actual_uid})"
                ),
                causes: Vec::new(),
            });
        }
        let reference = Ref { name: name.clone(), uid: actual_uid };
        if kind == "Pod" {
            let bound_node = object.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if node.is_some_and(|n| n != bound_node) {
                return Err(ApiError::Forbidden(format!(
                    "node {:?} may not request a token bound to pod {name:?}, which is not bound to it",
                    node.unwrap_or_default()
                )));
            }
            let pod_account = object.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default");
            if pod_account != account {
                return Err(ApiError::BadRequest(format!(
                    "cannot bind a token for service account {account:?} to pod {name:?}, which runs as {pod_account:?}"
                )));
            }
            if let Some(node) = object.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                // Nodes are cluster-scoped: the namespace is not part of their key.
                let node_uid = core_object(store, "nodes", namespace, node)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.uid)
                    .unwrap_or_default();
                kubernetes.node = Some(Ref { name: node.to_string(), uid: node_uid });
            }
            kubernetes.pod = Some(reference);
        } else {
            kubernetes.secret = Some(reference);
        }
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        iss: issuer.issuer.clone(),
        sub: format!("system:serviceaccount:{namespace}:{account}"),
        aud: audiences.clone(),
        exp: now + expiration,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes,
    };
    let token = issuer.sign(&claims)?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .map_err(|e| ApiError::Internal(format!("expiry time: {e}")))?;
    request["apiVersion"] = "authentication.k8s.io/v1".into();
    request["kind"] = "TokenRequest".into();
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = expiration.into();
    request["status"] = json!({"token": token, "expirationTimestamp": expires});
    let meta = request.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut meta = meta.as_object().cloned().unwrap_or_default();
    meta.insert("name".into(), account.into());
    meta.insert("namespace".into(), namespace.into());
    meta.insert("creationTimestamp".into(), Value::Null);
    request["metadata"] = Value::Object(meta);
    Ok(request)
}

/// A shared issuer, as the API state and the authenticator hold it.
pub type SharedIssuer = Arc<TokenIssuer>;

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> (tempfile::TempDir, TokenIssuer) {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        std::fs::write(dir.path().join("sa.key"), key.serialize_pem()).expect("write");
        std::fs::write(dir.path().join("sa.pub"), key.public_key_pem()).expect("write");
        let issuer =
            TokenIssuer::from_files(&dir.path().join("sa.key"), &dir.path().join("sa.pub"), DEFAULT_ISSUER, vec![])
                .expect("issuer");
        (dir, issuer)
    }

    fn claims(aud: &str, exp_in: i64) -> Claims {
        let now = jiff::Timestamp::now().as_second();
        Claims {
            iss: DEFAULT_ISSUER.into(),
            sub: "system:serviceaccount:default:robot".into(),
            aud: vec![aud.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: Ref { name: "robot".into(), uid: "u1".into() },
                ..Default::default()
            },
        }
    }

    #[test]
    fn tokens_verify_only_when_signed_by_us_for_us_and_unexpired() {
        let (_dir, ours) = issuer();
        let token = ours.sign(&claims(DEFAULT_ISSUER, 600)).expect("sign");
        assert_eq!(ours.verify(&token).expect("valid").kubernetes.serviceaccount.name, "robot");
        let wrong_audience = ours.sign(&claims("https://elsewhere", 600)).expect("sign");
        assert!(ours.verify(&wrong_audience).is_err());
        let expired = ours.sign(&claims(DEFAULT_ISSUER, -600)).expect("sign");
        assert!(ours.verify(&expired).is_err());
        let (_other_dir, theirs) = issuer();
        assert!(theirs.verify(&token).is_err(), "another key's signature");
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert!(ours.verify(&tampered).is_err());
    }
}
