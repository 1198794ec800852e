//! Who a request comes from. The TLS layer (in the binary) puts the [`UserInfo`] of a verified
//! client certificate into the request's extensions; [`Authenticator`] adds bearer tokens from a
//! static token file and decides what an unauthenticated request may reach.
//!
//! As upstream's authenticators: a certificate's CN is the user name and each O a group; every
//! authenticated user is also in `system:authenticated`; the anonymous user may read only
//! `/livez`, `/readyz`, `/healthz` and `/version`, and everything else answers 401.

use std::collections::HashMap;
use std::path::Path;

use axum::extract::Request;
use axum::extract::State;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use std::sync::Arc;

use skiff_store::Store;

use crate::serviceaccount::SharedIssuer;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with `groups` plus `system:authenticated`, as every authenticated user has.
    pub fn new(name: &str, uid: &str, groups: &[String]) -> Self {
        let mut groups = groups.to_vec();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".to_string());
        }
        Self { name: name.to_string(), uid: uid.to_string(), groups }
    }
}

/// Paths the anonymous user may read.
pub const PUBLIC_PATHS: &[&str] = &["/livez", "/readyz", "/healthz", "/version"];

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read token file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// A line is not `token,user,uid[,"group1,group2"]`.
    #[error("token file line {line}: {reason}")]
    Line { line: usize, reason: String },
}

/// A bearer token that matches no one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid bearer token")]
pub struct InvalidToken;

/// How requests are authenticated on this server.
#[derive(Default)]
pub struct Authenticator {
    /// Whether a request needs an identity (off only for plaintext development servers, which
    /// have no way to verify one).
    pub required: bool,
    tokens: HashMap<String, UserInfo>,
    /// Verifies service-account tokens, and the store their account and bound object are
    /// checked in.
    service_accounts: Option<(SharedIssuer, Arc<dyn Store>)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("required", &self.required)
            .field("tokens", &self.tokens.len())
            .field("service_accounts", &self.service_accounts.as_ref().map(|(issuer, _)| issuer))
            .finish()
    }
}

impl Authenticator {
    /// Authentication required, with the bearer tokens of `tokens` (see [`parse_token_file`]).
    pub fn new(required: bool, tokens: HashMap<String, UserInfo>) -> Self {
        Self { required, tokens, service_accounts: None }
    }

    /// Also accept service-account tokens `issuer` verifies, checked against `store`.
    pub fn with_service_accounts(mut self, issuer: SharedIssuer, store: Arc<dyn Store>) -> Self {
        self.service_accounts = Some((issuer, store));
        self
    }

    /// The user a request authenticates as: its verified client certificate first, else its
    /// bearer token. `Err` for a bearer token that matches no one (upstream answers 401 then,
    /// even where anonymous access would do).
    pub fn authenticate(
        &self,
        request: &Request,
    ) -> impl std::future::Future<Output = Result<Option<UserInfo>, InvalidToken>> + Send + '_ {
        // A request's body is not Sync, so the future holds only what the checks need: the
        // certificate's user, or the bearer token (most requests carry a certificate).
        let cert_user = request.extensions().get::<UserInfo>().cloned();
        let token = match cert_user {
            Some(_) => None,
            None => request
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(|t| t.trim().to_string()),
        };
        async move {
            match (cert_user, token) {
                (Some(user), _) => Ok(Some(user)),
                (None, Some(token)) => self.authenticate_token(&token).await.map(Some),
                (None, None) => Ok(None),
            }
        }
    }

    /// The user a bearer token stands for: a static token first, else a service-account token.
    async fn authenticate_token(&self, token: &str) -> Result<UserInfo, InvalidToken> {
        if let Some(user) = self.tokens.get(token) {
            return Ok(user.clone());
        }
        match &self.service_accounts {
            Some((issuer, store)) => match issuer.authenticate(store.as_ref(), token).await {
                Ok(user) => Ok(user),
                Err(e) => {
                    tracing::debug!("bearer token refused: {e}");
                    Err(InvalidToken)
                }
            },
            None => Err(InvalidToken),
        }
    }
}

/// Reads a static token file: one `token,user,uid` per line, optionally followed by a quoted,
/// comma-separated group list (`token,user,uid,"group1,group2"`), upstream's `--token-auth-file`
/// format. Blank lines and lines starting with `#` are skipped.
pub fn parse_token_file(path: &Path) -> Result<HashMap<String, UserInfo>, TokenFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| TokenFileError::Read { path: path.display().to_string(), source })?;
    parse_tokens(&text)
}

fn parse_tokens(text: &str) -> Result<HashMap<String, UserInfo>, TokenFileError> {
    let mut tokens = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| TokenFileError::Line { line: i + 1, reason: reason.to_string() };
        let mut fields = line.splitn(4, ',');
        let token = fields.next().map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| bad("no token"))?;
        let user = fields.next().map(str::trim).filter(|u| !u.is_empty()).ok_or_else(|| bad("no user name"))?;
        let uid = fields.next().map(str::trim).ok_or_else(|| bad("no uid"))?;
        let groups: Vec<String> = match fields.next().map(str::trim) {
            None | Some("") => Vec::new(),
            Some(quoted) => {
                let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(quoted);
                inner.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect()
            }
        };
        if tokens.insert(token.to_string(), UserInfo::new(user, uid, &groups)).is_some() {
            return Err(bad("the token is listed twice"));
        }
    }
    Ok(tokens)
}

/// The middleware: an authenticated request goes on with its [`UserInfo`] in its extensions;
/// an anonymous one goes on only to a public path (or when authentication is off); a bad token
/// or a missing identity gets upstream's 401 `Status`.
pub async fn require(State(auth): State<Arc<Authenticator>>, mut request: Request, next: Next) -> Response {
    match auth.authenticate(&request).await {
        Ok(Some(user)) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Ok(None) if !auth.required || PUBLIC_PATHS.contains(&request.uri().path()) => next.run(request).await,
        Ok(None) | Err(InvalidToken) => unauthorized(),
    }
}

fn unauthorized() -> Response {
    let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
    (axum::http::StatusCode::UNAUTHORIZED, [(axum::http::header::CONTENT_TYPE, "application/json")], status.to_string())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_in_upstreams_format() {
        let text = "# bootstrap\nsecret1,alice,1001,\"dev,ops\"\n\nsecret2,bob,1002\n";
        let tokens = parse_tokens(text).expect("valid");
        let alice = tokens.get("secret1").expect("alice");
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "1001");
        assert_eq!(alice.groups, vec!["dev", "ops", "system:authenticated"]);
        assert_eq!(tokens.get("secret2").map(|u| u.groups.clone()), Some(vec!["system:authenticated".to_string()]));
        for bad in [",alice,1", "t,,1", "t", "t,a,1\nt,b,2"] {
            assert!(parse_tokens(bad).is_err(), "{bad:?} must be refused");
        }
    }

    fn request(path: &str, token: Option<&str>) -> Request {
        let mut builder = axum::http::Request::builder().uri(path);
        if let Some(t) = token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        builder.body(axum::body::Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn certificates_win_and_unknown_tokens_fail() {
        let tokens = parse_tokens("good,carol,7").expect("valid");
        let auth = Authenticator::new(true, tokens);
        assert_eq!(auth.authenticate(&request("/api", None)).await, Ok(None));
        assert_eq!(
            auth.authenticate(&request("/api", Some("good"))).await.ok().flatten().map(|u| u.name),
            Some("carol".into())
        );
        assert_eq!(auth.authenticate(&request("/api", Some("bad"))).await, Err(InvalidToken));
        let mut with_cert = request("/api", Some("bad"));
        with_cert.extensions_mut().insert(UserInfo::new("admin", "", &["system:masters".to_string()]));
        assert_eq!(auth.authenticate(&with_cert).await.ok().flatten().map(|u| u.name), Some("admin".into()));
    }
}
