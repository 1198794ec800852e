//! A recorded client workload: concurrent creates, compare-and-swap updates and linearizable
//! reads over a small key space, each operation stored in a [`History`] for the checker.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use skiff_raft::RemoteStore;
use skiff_store::Consistency;
use skiff_store::Precondition;
use skiff_store::Store;
use skiff_store::StoreError;

use crate::linearizability::History;
use crate::linearizability::OpKind;
use crate::linearizability::Operation;
use crate::linearizability::Outcome;

/// A tiny deterministic PRNG (xorshift64*), so workloads need no extra dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub struct ClientStats {
    pub acked_writes: u64,
    pub rejected: u64,
    pub indeterminate: u64,
    pub reads: u64,
}

fn outcome_of_write(r: &Result<skiff_store::Record, StoreError>) -> Outcome {
    match r {
        Ok(rec) => Outcome::Written { revision: rec.revision },
        Err(StoreError::AlreadyExists { .. }) => Outcome::AlreadyExists,
        Err(StoreError::Conflict { .. }) => Outcome::Conflict,
        Err(StoreError::NotFound { .. }) => Outcome::NotFound,
        Err(_) => Outcome::Indeterminate,
    }
}

/// Runs one client until `stop` is set. Client `id` starts on endpoint `id % endpoints` and
/// moves to another server when one fails.
pub async fn run_client(
    id: usize,
    endpoints: Vec<String>,
    keys: usize,
    key_prefix: String,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
) -> ClientStats {
    let n = endpoints.len();
    let store = match RemoteStore::new(endpoints, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => panic!("client {id}: {e}"),
    };
    store.prefer(id % n);
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1));
    let mut known: HashMap<String, u64> = HashMap::new();
    let mut stats = ClientStats::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{key_prefix}{}", rng.below(keys as u64));
        seq += 1;
        let value = format!("c{id}-{seq}");
        let invoke = Instant::now();
        let (kind, outcome) = if rng.below(5) == 0 {
            let r = store.get(&key, Consistency::Linearizable).await;
            stats.reads += 1;
            let outcome = match r {
                Ok(Some(rec)) => {
                    known.insert(key.clone(), rec.revision);
                    Outcome::Found { value: String::from_utf8_lossy(&rec.value).into_owned(), revision: rec.revision }
                }
                Ok(None) => {
                    known.remove(&key);
                    Outcome::NotFound
                }
                // A failed read tells nothing and changes nothing: leave it out of the history.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            (OpKind::Get, outcome)
        } else if let Some(&rev) = known.get(&key) {
            let r = store.update(&key, value.clone().into_bytes(), Precondition::revision(rev)).await;
            match &r {
                Ok(rec) => {
                    known.insert(key.clone(), rec.revision);
                }
                _ => {
                    known.remove(&key);
                }
            }
            (OpKind::Update { value, expected_revision: rev }, outcome_of_write(&r))
        } else {
            let r = store.create(&key, value.clone().into_bytes(), &format!("uid-{id}-{seq}")).await;
            if let Ok(rec) = &r {
                known.insert(key.clone(), rec.revision);
            }
            (OpKind::Create { value }, outcome_of_write(&r))
        };
        let complete = match outcome {
            Outcome::Indeterminate => {
                stats.indeterminate += 1;
                None
            }
            Outcome::Written { .. } => {
                stats.acked_writes += 1;
                Some(Instant::now())
            }
            Outcome::Found { .. } => Some(Instant::now()),
            _ => {
                stats.rejected += 1;
                Some(Instant::now())
            }
        };
        let indeterminate = complete.is_none();
        history.record(Operation { client: id, key, kind, invoke, complete, outcome });
        if indeterminate {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stats
}
