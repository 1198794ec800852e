//! What every request handler shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Map;
use serde_json::Value;
use skiff_store::Store;

use crate::service_ips::ServiceNetwork;

/// Settings of the API server.
#[derive(Clone, Default)]
pub struct ApiConfig {
    pub service_network: ServiceNetwork,
    /// How to reach node agents (logs, exec, attach, port-forward): TLS with this server's
    /// component certificate, or plain HTTP when `None`.
    pub agent_tls: Option<Arc<rustls::ClientConfig>>,
    /// Signs service-account tokens for the TokenRequest API (none: the API is unavailable).
    pub service_accounts: Option<crate::serviceaccount::SharedIssuer>,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("service_network", &self.service_network)
            .field("agent_tls", &self.agent_tls.is_some())
            .field("service_accounts", &self.service_accounts)
            .finish()
    }
}

/// One served OpenAPI document, pre-rendered.
pub struct OpenApiDoc {
    pub hash: String,
    pub body: bytes::Bytes,
}

/// The state behind every route.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub config: ApiConfig,
    /// `components.schemas` of every served kind: the patch engines walk it.
    pub schemas: &'static Map<String, Value>,
    /// `/openapi/v3/<path>` documents.
    pub openapi: Arc<BTreeMap<String, OpenApiDoc>>,
    /// Who may do what (used only for requests that carry an authenticated user).
    pub authorizer: Arc<crate::authz::Authorizer>,
    /// The authenticated user of the request this state serves (`None` for the shared state
    /// and when authentication is off).
    pub caller: Option<crate::authn::UserInfo>,
    /// Whether each namespace takes new objects, as judged at a revision of it.
    pub namespace_verdicts: Arc<NamespaceVerdicts>,
}

/// Whether each namespace takes new objects, remembered with the revision of the namespace it
/// was judged from: every create reads its namespace, and decoding an unchanged one again was
/// a percent of the server's CPU under creates. A different revision is judged afresh.
#[derive(Default)]
pub struct NamespaceVerdicts(std::sync::Mutex<std::collections::HashMap<String, (u64, bool)>>);

impl NamespaceVerdicts {
    /// Namespaces remembered at most; past it the memory starts over.
    const CAPACITY: usize = 4096;

    /// The verdict on `namespace` at `revision`, if one was remembered.
    pub fn get(&self, namespace: &str, revision: u64) -> Option<bool> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(namespace).filter(|(at, _)| *at == revision).map(|(_, open)| *open)
    }

    pub fn remember(&self, namespace: &str, revision: u64, open: bool) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::CAPACITY && !map.contains_key(namespace) {
            map.clear();
        }
        map.insert(namespace.to_string(), (revision, open));
    }
}

impl ApiState {
    pub fn new(store: Arc<dyn Store>, config: ApiConfig) -> Arc<Self> {
        let openapi = skiff_api_types::openapi::documents()
            .into_iter()
            .map(|(path, doc)| {
                let body = doc.to_string();
                let hash = fnv_hex(body.as_bytes());
                (path, OpenApiDoc { hash, body: bytes::Bytes::from(body) })
            })
            .collect();
        Arc::new(Self {
            store,
            config,
            schemas: skiff_api_types::openapi::served_schemas(),
            openapi: Arc::new(openapi),
            authorizer: Default::default(),
            caller: None,
            namespace_verdicts: Default::default(),
        })
    }

    /// This state serving a request of `caller`.
    pub fn for_caller(&self, caller: crate::authn::UserInfo) -> Arc<Self> {
        Arc::new(Self { caller: Some(caller), ..self.clone() })
    }

    /// This state with every write fenced by `fence` (the `X-Skiff-Fence` header): a
    /// leader-only component's writes then fail once its leadership has ended.
    pub fn fenced(&self, fence: u64) -> Arc<Self> {
        Arc::new(Self { store: Arc::new(skiff_store::FencedStore::new(self.store.clone(), fence)), ..self.clone() })
    }
}

/// A stable content hash for the `?hash=` kubectl caches OpenAPI documents under.
fn fnv_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_verdict_holds_only_for_the_revision_it_was_made_at() {
        let verdicts = NamespaceVerdicts::default();
        assert_eq!(verdicts.get("a", 5), None);
        verdicts.remember("a", 5, true);
        assert_eq!(verdicts.get("a", 5), Some(true));
        assert_eq!(verdicts.get("a", 6), None, "a changed namespace is judged again");
        assert_eq!(verdicts.get("b", 5), None);
        verdicts.remember("a", 6, false);
        assert_eq!(verdicts.get("a", 6), Some(false));
        assert_eq!(verdicts.get("a", 5), None, "only the latest judgement is kept");
        for i in 0..NamespaceVerdicts::CAPACITY as u64 + 10 {
            verdicts.remember(&format!("ns-{i}"), i, true);
        }
        let held = verdicts.0.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert!(held <= NamespaceVerdicts::CAPACITY, "{held} verdicts held");
    }
}
