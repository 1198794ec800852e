//! A per-key linearizability checker for histories recorded against skiff's
//! key/value store.
//!
//! # Model
//!
//! Every key holds `Option<(value, revision)>`, initially absent. There is no
//! delete, so once a key exists it exists forever. Revisions come from one
//! global counter that the store bumps on every successful write, so:
//!
//! * along the linearization of one key, the revisions of successful writes
//!   strictly increase (and an `Update` only succeeds against the revision it
//!   names, so its new revision must exceed `expected_revision`);
//! * no two writes, on any keys, report the same revision;
//! * if an operation that observed revision `r` (a write or a read) completed
//!   before a write was invoked, that write's revision is greater than `r`.
//!
//! The first property is checked by the search; the other two are cheap
//! cross-key checks done up front. Every recorded operation is taken to be a
//! separate request (the store does not deduplicate client retries), so a
//! revision reported by one operation's write is never another's.
//!
//! # Indeterminate operations
//!
//! An operation whose outcome is [`Outcome::Indeterminate`] (timeout, lost
//! connection) may have taken effect at any point after its invocation, even
//! long after the client gave up, or never. Its `complete` field is ignored.
//! An indeterminate `Get` constrains nothing and is dropped. An indeterminate
//! write that is linearized leaves the key at an *unknown* revision: the
//! checker only knows a lower bound (and any revisions a later `Conflict` rules
//! out). The first later operation that observes the revision (a `Get` that
//! finds the value, an `Update` that succeeds against it) pins it. It can
//! never be a revision that the history attributes to some other write.
//!
//! # Algorithm
//!
//! Linearizability is compositional, so the history is split per key and each
//! key is checked on its own with a Wing–Gong/Lowe depth-first search: at each
//! step any not-yet-linearized operation may take effect next provided that no
//! other not-yet-linearized operation completed strictly before it was invoked.
//! Visited (set of linearized operations, model state) pairs are memoized, so
//! each configuration is explored once. A pending operation that can take
//! effect without changing the state (a read, a failed write) is placed
//! greedily, which is complete and removes the blow-up of concurrent reads.
//! The search succeeds once every
//! operation with a definite outcome has been linearized; indeterminate writes
//! that were never linearized are taken not to have happened.
//!
//! The search is exponential in the worst case, so it runs against a time
//! budget shared by all keys; [`CheckError::Timeout`] means "no answer", and
//! callers should treat it as a failed check. Keys are checked in order and
//! the first violating key is reported; its explanation shows one of the
//! longest consistent linearization prefixes, the state it leads to, and why
//! each operation that could come next does not fit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// What a client asked the store to do to one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpKind {
    /// Create key with value; fails with AlreadyExists if present.
    Create { value: String },
    /// Update value only if the current revision equals `expected_revision`;
    /// fails with Conflict if revision differs, NotFound if absent.
    Update { value: String, expected_revision: u64 },
    /// Linearizable read.
    Get,
}

/// What the store answered.
///
/// Valid combinations: `Create` → `Written | AlreadyExists | Indeterminate`;
/// `Update` → `Written | Conflict | NotFound | Indeterminate`;
/// `Get` → `Found | NotFound | Indeterminate`. Anything else is rejected as
/// [`CheckError::Malformed`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Create/Update succeeded; the store reports the new revision.
    Written {
        revision: u64,
    },
    AlreadyExists,
    Conflict,
    NotFound,
    /// Get found the object.
    Found {
        value: String,
        revision: u64,
    },
    /// The request timed out / connection failed: it may or may not have taken
    /// effect. Treated as "maybe applied, at any point after invoke", never as
    /// "not applied".
    Indeterminate,
}

/// One client operation as observed from the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Client id; informational (used in explanations).
    pub client: usize,
    pub key: String,
    pub kind: OpKind,
    /// Taken just before the request was sent.
    pub invoke: Instant,
    /// Taken just after the response arrived. Must be `Some` (and not before
    /// `invoke`) for every definite outcome; ignored for `Indeterminate`.
    pub complete: Option<Instant>,
    pub outcome: Outcome,
}

/// A thread-safe history recorder shared by the clients of a test.
#[derive(Debug, Default)]
pub struct History {
    ops: Mutex<Vec<Operation>>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one finished (or abandoned) operation.
    pub fn record(&self, op: Operation) {
        self.ops.lock().push(op);
    }

    /// A snapshot of everything recorded so far, in recording order.
    pub fn operations(&self) -> Vec<Operation> {
        self.ops.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.ops.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.lock().is_empty()
    }
}

/// The result of a completed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Linearizable,
    /// The first key (in key order) found to have no valid linearization, or
    /// whose revisions break the global-counter rules.
    Violation {
        key: String,
        explanation: String,
    },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// The checker could not reach a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The search exceeded its budget while working on `key`; treat as failure.
    #[error("linearizability search exceeded its time budget on key {key:?}")]
    Timeout { key: String },
    /// The history itself is invalid (impossible outcome, missing or
    /// inverted completion time).
    #[error("malformed operation #{index} on key {key:?}: {reason}")]
    Malformed { key: String, index: usize, reason: String },
}

/// Checks `history` against the model described in the module docs.
pub fn check(history: &[Operation], budget: Duration) -> Result<Verdict, CheckError> {
    // A budget too large to represent is no budget at all.
    let deadline = Instant::now().checked_add(budget);
    let base = history.iter().map(|op| op.invoke).min();
    let Some(base) = base else {
        return Ok(Verdict::Linearizable);
    };
    validate(history)?;
    if let Some((key, explanation)) = check_revisions(history, base) {
        return Ok(Verdict::Violation { key, explanation });
    }
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        by_key.entry(op.key.as_str()).or_default().push(index);
    }
    let claims = Claims::new(history);
    for (key, indices) in by_key {
        let ctx = KeyContext::new(key, history, &indices, base, &claims);
        if let Some(explanation) = ctx.search(deadline)? {
            return Ok(Verdict::Violation { key: key.to_owned(), explanation });
        }
    }
    Ok(Verdict::Linearizable)
}

fn validate(history: &[Operation]) -> Result<(), CheckError> {
    for (index, op) in history.iter().enumerate() {
        let malformed = |reason: String| CheckError::Malformed { key: op.key.clone(), index, reason };
        let possible = matches!(
            (&op.kind, &op.outcome),
            (_, Outcome::Indeterminate)
                | (OpKind::Create { .. }, Outcome::Written { .. } | Outcome::AlreadyExists)
                | (OpKind::Update { .. }, Outcome::Written { .. } | Outcome::Conflict | Outcome::NotFound)
                | (OpKind::Get, Outcome::Found { .. } | Outcome::NotFound)
        );
        if !possible {
            return Err(malformed(format!("outcome {:?} is impossible for {:?}", op.outcome, op.kind)));
        }
        if op.outcome != Outcome::Indeterminate {
            match op.complete {
                None => return Err(malformed("definite outcome without completion time".into())),
                Some(complete) if complete < op.invoke => {
                    return Err(malformed("completed before it was invoked".into()))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The revision an operation reports, if any.
fn observed_revision(outcome: &Outcome) -> Option<u64> {
    match outcome {
        Outcome::Written { revision } | Outcome::Found { revision, .. } => Some(*revision),
        _ => None,
    }
}

/// Cross-key rules of the global revision counter (see module docs).
/// Returns `(key, explanation)` for the first broken rule.
fn check_revisions(history: &[Operation], base: Instant) -> Option<(String, String)> {
    let describe = |i: usize| describe_op(history, base, i);
    // Each revision names exactly one write.
    let mut writer: HashMap<u64, usize> = HashMap::new();
    for (i, op) in history.iter().enumerate() {
        if let Outcome::Written { revision } = op.outcome {
            if let Some(j) = writer.insert(revision, i) {
                return Some((
                    op.key.clone(),
                    format!(
                        "revision {revision} was reported by two writes; revisions are unique per write:\n  {}\n  {}",
                        describe(j),
                        describe(i)
                    ),
                ));
            }
        }
    }
    for (i, op) in history.iter().enumerate() {
        if let Outcome::Found { revision, .. } = op.outcome {
            if let Some(&j) = writer.get(&revision) {
                if history[j].key != op.key {
                    return Some((
                        op.key.clone(),
                        format!(
                            "a read observed revision {revision}, which was assigned to a write of another key:\n  {}\n  {}",
                            describe(i),
                            describe(j)
                        ),
                    ));
                }
            }
        }
    }
    // Real-time order: anything observed before a write was invoked is older.
    let mut observed: Vec<(Instant, u64, usize)> = history
        .iter()
        .enumerate()
        .filter(|(_, op)| op.outcome != Outcome::Indeterminate)
        .filter_map(|(i, op)| Some((op.complete?, observed_revision(&op.outcome)?, i)))
        .collect();
    observed.sort_unstable();
    let mut prefix_max: Vec<(u64, usize)> = Vec::with_capacity(observed.len());
    for &(_, revision, i) in &observed {
        let best = match prefix_max.last() {
            Some(&(max, j)) if max >= revision => (max, j),
            _ => (revision, i),
        };
        prefix_max.push(best);
    }
    for (b, op) in history.iter().enumerate() {
        let Outcome::Written { revision } = op.outcome else {
            continue;
        };
        let before = observed.partition_point(|(complete, _, _)| *complete < op.invoke);
        if let Some(&(max, a)) = before.checked_sub(1).and_then(|n| prefix_max.get(n)) {
            if max >= revision {
                return Some((
                    op.key.clone(),
                    format!(
                        "revision went backwards in real time: the first operation completed before the second \
                         was invoked and observed revision {max}, yet the second wrote revision {revision}:\n  {}\n  {}",
                        describe(a),
                        describe(b)
                    ),
                ));
            }
        }
    }
    None
}

fn rel(base: Instant, t: Instant) -> String {
    format!("+{:.3}ms", t.saturating_duration_since(base).as_secs_f64() * 1e3)
}

fn describe_op(history: &[Operation], base: Instant, i: usize) -> String {
    let op = &history[i];
    let complete = match (&op.outcome, op.complete) {
        (Outcome::Indeterminate, _) | (_, None) => "never completed".to_owned(),
        (_, Some(c)) => format!("completed {}", rel(base, c)),
    };
    format!(
        "op #{i} (client {}, key {:?}): {:?} -> {:?}, invoked {}, {complete}",
        op.client,
        op.key,
        op.kind,
        op.outcome,
        rel(base, op.invoke)
    )
}

fn shorten(value: &str) -> String {
    const MAX: usize = 80;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

// ---------------------------------------------------------------------------
// Per-key model.

/// The revision of the current object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Rev {
    Known(u64),
    /// Written by a linearized indeterminate write: at least `min`, and none
    /// of `excluded` (sorted, each `>= min`).
    Unknown {
        min: u64,
        excluded: Vec<u64>,
    },
}

impl Rev {
    fn unknown_after(revision: u64) -> Rev {
        Rev::Unknown { min: revision.saturating_add(1), excluded: Vec::new() }
    }

    /// The revision is known to differ from `r` (a `Conflict` was observed);
    /// `None` if it is known to equal `r`.
    fn exclude(&self, r: u64) -> Option<Rev> {
        match self {
            Rev::Known(k) if *k == r => None,
            Rev::Unknown { min, excluded } if r >= *min => {
                let mut excluded = excluded.clone();
                if let Err(at) = excluded.binary_search(&r) {
                    excluded.insert(at, r);
                }
                Some(Rev::Unknown { min: *min, excluded })
            }
            other => Some(other.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Object {
    /// Index into the key's interned values.
    value: u32,
    rev: Rev,
}

type State = Option<Object>;

/// Who a revision reported by a definite outcome can belong to.
enum Claim<'a> {
    /// A definite write reported it, or reads disagree about it: no
    /// indeterminate write can have been assigned it.
    Taken,
    /// Only reads reported it, all of `value` on `key`: it may be the
    /// revision of an indeterminate write of `value` to `key`.
    Read { key: &'a str, value: &'a str },
}

/// Revisions are unique per write, so an indeterminate write was not
/// assigned any revision that the history attributes to another write. This
/// keeps an unobserved indeterminate write from acting as a wildcard that
/// matches every later `expected_revision`.
struct Claims<'a>(HashMap<u64, Claim<'a>>);

impl<'a> Claims<'a> {
    fn new(history: &'a [Operation]) -> Self {
        let mut claims = HashMap::new();
        for op in history {
            match &op.outcome {
                Outcome::Written { revision } => {
                    claims.insert(*revision, Claim::Taken);
                }
                Outcome::Found { value, revision } => {
                    let read = Claim::Read { key: &op.key, value };
                    let claim = claims.entry(*revision).or_insert(read);
                    if let Claim::Read { key, value: v } = claim {
                        if *key != op.key || v != value {
                            *claim = Claim::Taken;
                        }
                    }
                }
                _ => {}
            }
        }
        Claims(claims)
    }

    /// May an indeterminate write of `value` to `key` have revision `r`?
    fn allows(&self, r: u64, key: &str, value: &str) -> bool {
        match self.0.get(&r) {
            None => true,
            Some(Claim::Taken) => false,
            Some(Claim::Read { key: k, value: v }) => *k == key && *v == value,
        }
    }
}

/// An operation reduced to what it requires of, and does to, the state.
#[derive(Debug, Clone, Copy)]
enum Effect {
    CreateOk {
        value: u32,
        revision: u64,
    },
    CreateMaybe {
        value: u32,
    },
    UpdateOk {
        value: u32,
        expected: u64,
        revision: u64,
    },
    UpdateMaybe {
        value: u32,
        expected: u64,
    },
    UpdateConflict {
        expected: u64,
    },
    GetFound {
        value: u32,
        revision: u64,
    },
    /// `Create` → `AlreadyExists`.
    Present,
    /// `Update`/`Get` → `NotFound`.
    Absent,
}

#[derive(Debug, Clone, Copy)]
enum Reject {
    Exists,
    Missing,
    WrongValue,
    WrongRevision,
    NotIncreasing,
    ConflictButMatches,
}

impl Reject {
    fn text(self) -> &'static str {
        match self {
            Reject::Exists => "requires the key to be absent, but it exists",
            Reject::Missing => "requires the key to exist, but it is absent",
            Reject::WrongValue => "observed a value other than the current one",
            Reject::WrongRevision => "names a revision other than the current one",
            Reject::NotIncreasing => "reports a new revision that is not greater than the one it replaced",
            Reject::ConflictButMatches => "reported Conflict, but the current revision equals expected_revision",
        }
    }
}

// ---------------------------------------------------------------------------
// Per-key search.

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset(vec![0; len.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

struct KeyOp {
    /// Index into the full history.
    index: usize,
    effect: Effect,
    invoke: Instant,
    /// `None` for indeterminate operations.
    complete: Option<Instant>,
}

struct KeyContext<'a> {
    key: &'a str,
    history: &'a [Operation],
    base: Instant,
    claims: &'a Claims<'a>,
    /// Sorted by invocation time.
    ops: Vec<KeyOp>,
    values: Vec<&'a str>,
    /// `written[v]`: some Create/Update of this key carries value `v`.
    written: Vec<bool>,
    definite: usize,
}

struct Frame {
    /// The operation linearized to reach this frame (`None` at the root).
    via: Option<usize>,
    state: State,
    candidates: Vec<usize>,
    next: usize,
}

/// The deepest point reached, for explaining a failure.
struct Deepest {
    definite: usize,
    path: Vec<usize>,
    done: Bitset,
    state: State,
}

impl<'a> KeyContext<'a> {
    fn new(key: &'a str, history: &'a [Operation], indices: &[usize], base: Instant, claims: &'a Claims<'a>) -> Self {
        let mut ctx = KeyContext {
            key,
            history,
            base,
            claims,
            ops: Vec::with_capacity(indices.len()),
            values: Vec::new(),
            written: Vec::new(),
            definite: 0,
        };
        let mut ids: HashMap<&'a str, u32> = HashMap::new();
        let mut intern = |value: &'a str, write: bool, ctx: &mut KeyContext<'a>| {
            let id = *ids.entry(value).or_insert_with(|| {
                ctx.values.push(value);
                ctx.written.push(false);
                // Each interned value comes from one operation: fits in u32.
                (ctx.values.len() - 1) as u32
            });
            ctx.written[id as usize] |= write;
            id
        };
        for &index in indices {
            let op = &history[index];
            let indeterminate = op.outcome == Outcome::Indeterminate;
            let effect = match (&op.kind, &op.outcome) {
                (OpKind::Get, Outcome::Indeterminate) => continue,
                (OpKind::Create { value }, Outcome::Written { revision }) => {
                    Effect::CreateOk { value: intern(value, true, &mut ctx), revision: *revision }
                }
                (OpKind::Create { value }, _) if indeterminate => {
                    Effect::CreateMaybe { value: intern(value, true, &mut ctx) }
                }
                (OpKind::Update { value, expected_revision }, Outcome::Written { revision }) => Effect::UpdateOk {
                    value: intern(value, true, &mut ctx),
                    expected: *expected_revision,
                    revision: *revision,
                },
                (OpKind::Update { value, expected_revision }, _) if indeterminate => {
                    Effect::UpdateMaybe { value: intern(value, true, &mut ctx), expected: *expected_revision }
                }
                (OpKind::Update { expected_revision, .. }, Outcome::Conflict) => {
                    Effect::UpdateConflict { expected: *expected_revision }
                }
                (OpKind::Get, Outcome::Found { value, revision }) => {
                    Effect::GetFound { value: intern(value, false, &mut ctx), revision: *revision }
                }
                (_, Outcome::AlreadyExists) => Effect::Present,
                // Remaining valid combinations (see `validate`) are NotFound.
                _ => Effect::Absent,
            };
            let complete = if indeterminate { None } else { op.complete };
            ctx.definite += usize::from(complete.is_some());
            ctx.ops.push(KeyOp { index, effect, invoke: op.invoke, complete });
        }
        ctx.ops.sort_by_key(|op| op.invoke);
        ctx
    }

    /// May `object`'s revision be `r`?
    fn admits(&self, object: &Object, r: u64) -> bool {
        match &object.rev {
            Rev::Known(k) => *k == r,
            Rev::Unknown { min, excluded } => {
                r >= *min
                    && excluded.binary_search(&r).is_err()
                    && self.claims.allows(r, self.key, self.values[object.value as usize])
            }
        }
    }

    fn step(&self, state: &State, effect: Effect) -> Result<State, Reject> {
        let object = |value, rev| Ok(Some(Object { value, rev }));
        match (effect, state) {
            (Effect::Absent, None) => Ok(None),
            (Effect::Present, Some(_)) => Ok(state.clone()),
            (Effect::CreateOk { value, revision }, None) => object(value, Rev::Known(revision)),
            (Effect::CreateMaybe { value }, None) => object(value, Rev::Unknown { min: 0, excluded: Vec::new() }),
            (Effect::CreateOk { .. } | Effect::CreateMaybe { .. } | Effect::Absent, Some(_)) => Err(Reject::Exists),
            (_, None) => Err(Reject::Missing),
            (Effect::UpdateOk { value, expected, revision }, Some(cur)) => {
                if !self.admits(cur, expected) {
                    Err(Reject::WrongRevision)
                } else if revision <= expected {
                    Err(Reject::NotIncreasing)
                } else {
                    object(value, Rev::Known(revision))
                }
            }
            (Effect::UpdateMaybe { value, expected }, Some(cur)) => {
                if self.admits(cur, expected) {
                    object(value, Rev::unknown_after(expected))
                } else {
                    Err(Reject::WrongRevision)
                }
            }
            (Effect::UpdateConflict { expected }, Some(cur)) => match cur.rev.exclude(expected) {
                Some(rev) => object(cur.value, rev),
                None => Err(Reject::ConflictButMatches),
            },
            (Effect::GetFound { value, revision }, Some(cur)) => {
                if cur.value != value {
                    Err(Reject::WrongValue)
                } else if !self.admits(cur, revision) {
                    Err(Reject::WrongRevision)
                } else {
                    object(value, Rev::Known(revision))
                }
            }
        }
    }

    /// Operations that may take effect next: not yet linearized, and invoked
    /// no later than the earliest completion among pending operations.
    /// Definite operations first (they are the ones that must be placed).
    fn candidates(&self, done: &Bitset) -> Vec<usize> {
        let horizon = (0..self.ops.len()).filter(|&i| !done.get(i)).filter_map(|i| self.ops[i].complete).min();
        let mut definite = Vec::new();
        let mut maybe = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            if horizon.is_some_and(|h| op.invoke > h) {
                break;
            }
            if done.get(i) {
                continue;
            }
            if op.complete.is_some() {
                definite.push(i);
            } else {
                maybe.push(i);
            }
        }
        definite.append(&mut maybe);
        definite
    }

    /// The candidates worth branching on from `state`. If a definite
    /// candidate can take effect without changing the state (a read, a failed
    /// write), placing it right away loses nothing: any linearization that
    /// places it later still works with it moved here, since nothing pending
    /// must precede it. This removes the factorial blow-up of concurrent reads.
    fn branches(&self, done: &Bitset, state: &State) -> Vec<usize> {
        let candidates = self.candidates(done);
        let neutral = candidates.iter().copied().find(|&i| {
            self.ops[i].complete.is_some() && self.step(state, self.ops[i].effect).is_ok_and(|next| next == *state)
        });
        match neutral {
            Some(i) => vec![i],
            None => candidates,
        }
    }

    /// `Ok(None)` if linearizable, `Ok(Some(explanation))` if not.
    fn search(&self, deadline: Option<Instant>) -> Result<Option<String>, CheckError> {
        if self.definite == 0 {
            return Ok(None);
        }
        let mut done = Bitset::new(self.ops.len());
        let mut linearized_definite = 0;
        let mut seen: HashSet<(Bitset, State)> = HashSet::new();
        let mut deepest = Deepest { definite: 0, path: Vec::new(), done: done.clone(), state: None };
        let mut stack = vec![Frame { via: None, state: None, candidates: self.branches(&done, &None), next: 0 }];
        let mut steps: u64 = 0;
        while let Some(top) = stack.last_mut() {
            if steps & 0xff == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(CheckError::Timeout { key: self.key.to_owned() });
            }
            steps += 1;
            let Some(&i) = top.candidates.get(top.next) else {
                if let Some(via) = top.via {
                    done.clear(via);
                    linearized_definite -= usize::from(self.ops[via].complete.is_some());
                }
                stack.pop();
                continue;
            };
            top.next += 1;
            let Ok(state) = self.step(&top.state, self.ops[i].effect) else {
                continue;
            };
            done.set(i);
            if !seen.insert((done.clone(), state.clone())) {
                done.clear(i);
                continue;
            }
            linearized_definite += usize::from(self.ops[i].complete.is_some());
            if linearized_definite == self.definite {
                return Ok(None);
            }
            if linearized_definite > deepest.definite {
                deepest = Deepest {
                    definite: linearized_definite,
                    path: stack.iter().filter_map(|f| f.via).chain([i]).collect(),
                    done: done.clone(),
                    state: state.clone(),
                };
            }
            stack.push(Frame { via: Some(i), candidates: self.branches(&done, &state), state, next: 0 });
        }
        Ok(Some(self.explain(&deepest)))
    }

    fn describe(&self, i: usize) -> String {
        describe_op(self.history, self.base, self.ops[i].index)
    }

    fn describe_state(&self, state: &State) -> String {
        let Some(object) = state else {
            return "absent".to_owned();
        };
        let value = shorten(self.values[object.value as usize]);
        match &object.rev {
            Rev::Known(r) => format!("value {value} at revision {r}"),
            Rev::Unknown { min, excluded } if excluded.is_empty() => {
                format!("value {value} at an unknown revision >= {min}")
            }
            Rev::Unknown { min, excluded } => {
                format!("value {value} at an unknown revision >= {min}, not any of {excluded:?}")
            }
        }
    }

    fn explain(&self, deepest: &Deepest) -> String {
        const SHOWN: usize = 12;
        let mut out = format!(
            "no valid linearization of key {:?} ({} operations, {} with a definite outcome).\n",
            self.key,
            self.ops.len(),
            self.definite
        );
        let _ = writeln!(
            out,
            "The longest consistent prefix places {} of the {} definite operations ({} operations in all).",
            deepest.definite,
            self.definite,
            deepest.path.len()
        );
        // Replay the prefix to show the state after each step.
        let mut state: State = None;
        let skip = deepest.path.len().saturating_sub(SHOWN);
        if skip > 0 {
            let _ = writeln!(out, "  ... {skip} earlier operations ...");
        }
        for (n, &i) in deepest.path.iter().enumerate() {
            if let Ok(next) = self.step(&state, self.ops[i].effect) {
                state = next;
            }
            if n >= skip {
                let _ = writeln!(out, "  {}\n      => {}", self.describe(i), self.describe_state(&state));
            }
        }
        let _ = writeln!(out, "State after that prefix: {}.", self.describe_state(&deepest.state));
        let _ = writeln!(out, "None of the operations that real-time order allows next can take effect there:");
        let mut tried_maybe = 0;
        for i in self.candidates(&deepest.done) {
            if self.ops[i].complete.is_none() {
                tried_maybe += usize::from(self.step(&deepest.state, self.ops[i].effect).is_ok());
                continue;
            }
            let reason = match self.step(&deepest.state, self.ops[i].effect) {
                Err(reject) => reject.text().to_owned(),
                Ok(_) => "could take effect, but no consistent continuation follows".to_owned(),
            };
            let _ = writeln!(out, "  {}\n      -> {reason}", self.describe(i));
            if let Effect::GetFound { value, .. } = self.ops[i].effect {
                if !self.written[value as usize] {
                    let _ = writeln!(
                        out,
                        "      (no operation on this key ever wrote {})",
                        shorten(self.values[value as usize])
                    );
                }
            }
        }
        if tried_maybe > 0 {
            let _ = writeln!(
                out,
                "({tried_maybe} indeterminate operation(s) could also be placed there; no placement of them helps.)"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(30);

    struct Builder {
        base: Instant,
        ops: Vec<Operation>,
    }

    impl Builder {
        fn new() -> Self {
            Builder { base: Instant::now(), ops: Vec::new() }
        }

        fn at(&self, ms: u64) -> Instant {
            self.base + Duration::from_millis(ms)
        }

        /// A definite operation over `[from, to]` milliseconds.
        fn op(&mut self, client: usize, key: &str, kind: OpKind, from: u64, to: u64, outcome: Outcome) {
            let (invoke, complete) = (self.at(from), Some(self.at(to)));
            self.ops.push(Operation { client, key: key.to_owned(), kind, invoke, complete, outcome });
        }

        fn maybe(&mut self, client: usize, key: &str, kind: OpKind, from: u64) {
            let invoke = self.at(from);
            self.ops.push(Operation {
                client,
                key: key.to_owned(),
                kind,
                invoke,
                complete: None,
                outcome: Outcome::Indeterminate,
            });
        }

        fn verdict(&self) -> Verdict {
            check(&self.ops, BUDGET).expect("check finishes")
        }
    }

    fn create(v: &str) -> OpKind {
        OpKind::Create { value: v.into() }
    }
    fn update(v: &str, expected_revision: u64) -> OpKind {
        OpKind::Update { value: v.into(), expected_revision }
    }
    fn written(revision: u64) -> Outcome {
        Outcome::Written { revision }
    }
    fn found(v: &str, revision: u64) -> Outcome {
        Outcome::Found { value: v.into(), revision }
    }

    fn assert_violation(verdict: Verdict, needle: &str) -> String {
        match verdict {
            Verdict::Violation { explanation, .. } => {
                assert!(explanation.contains(needle), "explanation lacks {needle:?}:\n{explanation}");
                explanation
            }
            Verdict::Linearizable => panic!("expected a violation"),
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(check(&[], BUDGET), Ok(Verdict::Linearizable));
    }

    #[test]
    fn sequential_valid_history() {
        let mut h = Builder::new();
        h.op(0, "k", OpKind::Get, 0, 1, Outcome::NotFound);
        h.op(0, "k", update("x", 1), 2, 3, Outcome::NotFound);
        h.op(0, "k", create("a"), 4, 5, written(1));
        h.op(1, "k", create("z"), 6, 7, Outcome::AlreadyExists);
        h.op(1, "k", OpKind::Get, 8, 9, found("a", 1));
        h.op(0, "k", update("b", 1), 10, 11, written(4));
        h.op(1, "k", update("c", 1), 12, 13, Outcome::Conflict);
        h.op(1, "k", OpKind::Get, 14, 15, found("b", 4));
        h.op(2, "other", create("o"), 16, 17, written(5));
        assert_eq!(h.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_writes_valid_in_one_order_only() {
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 1, written(1));
        // Invoked first, but it can only follow the other update.
        h.op(1, "k", update("c", 2), 10, 30, written(3));
        h.op(2, "k", update("b", 1), 11, 29, written(2));
        h.op(3, "k", OpKind::Get, 40, 41, found("c", 3));
        assert_eq!(h.verdict(), Verdict::Linearizable);

        // Real-time order forbids the only valid order.
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 1, written(1));
        h.op(1, "k", update("c", 2), 10, 20, written(3));
        h.op(2, "k", update("b", 1), 21, 29, written(2));
        assert!(!h.verdict().is_linearizable());
    }

    #[test]
    fn lost_acknowledged_write_is_a_violation() {
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 1, written(1));
        h.op(0, "k", update("b", 1), 2, 3, written(2));
        h.op(1, "k", OpKind::Get, 4, 5, found("a", 1));
        let explanation = assert_violation(h.verdict(), "observed a value other than the current one");
        assert!(explanation.contains("value \"b\" at revision 2"), "{explanation}");
    }

    #[test]
    fn stale_read_is_a_violation() {
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 1, written(1));
        // The update is concurrent with both reads, but once one read saw
        // the new value a later read must not see the old one.
        h.op(0, "k", update("b", 1), 10, 50, written(2));
        h.op(1, "k", OpKind::Get, 11, 20, found("b", 2));
        h.op(2, "k", OpKind::Get, 21, 30, found("a", 1));
        assert_violation(h.verdict(), "op #3");
    }

    #[test]
    fn indeterminate_create_that_shows_up_is_linearizable() {
        let mut h = Builder::new();
        h.maybe(0, "k", create("a"), 0);
        h.op(1, "k", OpKind::Get, 10, 11, Outcome::NotFound);
        // It took effect late, after the client gave up and a read missed it.
        h.op(1, "k", OpKind::Get, 20, 21, found("a", 7));
        h.op(2, "k", create("x"), 22, 23, Outcome::AlreadyExists);
        h.op(2, "k", update("b", 7), 30, 31, written(9));
        assert_eq!(h.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn indeterminate_create_that_never_shows_up_is_linearizable() {
        let mut h = Builder::new();
        h.maybe(0, "k", create("a"), 0);
        h.op(1, "k", OpKind::Get, 10, 11, Outcome::NotFound);
        h.op(2, "k", create("b"), 20, 21, written(3));
        h.op(1, "k", OpKind::Get, 30, 31, found("b", 3));
        assert_eq!(h.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn indeterminate_revision_is_pinned_by_observation() {
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 1, written(2));
        h.maybe(0, "k", update("b", 2), 2);
        h.op(1, "k", OpKind::Get, 10, 11, found("b", 5));
        // Pinned at 5: another revision for the same write is impossible.
        h.op(1, "k", OpKind::Get, 12, 13, found("b", 6));
        assert_violation(h.verdict(), "names a revision other than the current one");
    }

    #[test]
    fn conflict_excludes_unknown_revision() {
        let mut h = Builder::new();
        h.maybe(0, "k", create("a"), 0);
        h.op(1, "k", update("x", 4), 10, 11, Outcome::Conflict);
        h.op(1, "k", OpKind::Get, 12, 13, found("a", 4));
        let explanation = assert_violation(h.verdict(), "not any of [4]");
        assert!(explanation.contains("unknown revision"), "{explanation}");

        // The same with a revision the conflict did not rule out is fine.
        let mut h = Builder::new();
        h.maybe(0, "k", create("a"), 0);
        h.op(1, "k", update("x", 4), 10, 11, Outcome::Conflict);
        h.op(1, "k", OpKind::Get, 12, 13, found("a", 3));
        assert_eq!(h.verdict(), Verdict::Linearizable);
    }

    #[test]
    fn many_concurrent_reads_are_checked_quickly() {
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 1, written(1));
        h.op(0, "k", update("b", 1), 10, 100, written(2));
        for client in 1..=60 {
            let seen = if client % 2 == 0 { found("a", 1) } else { found("b", 2) };
            h.op(client, "k", OpKind::Get, 10, 100, seen);
        }
        assert_eq!(h.verdict(), Verdict::Linearizable);
        // An impossible read among them forces an exhaustive search, which
        // must not enumerate the orders of the others.
        h.op(99, "k", OpKind::Get, 10, 100, found("a", 2));
        let started = Instant::now();
        assert!(!h.verdict().is_linearizable());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn read_of_never_written_value_is_a_violation() {
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 1, written(1));
        h.op(1, "k", OpKind::Get, 2, 3, found("ghost", 1));
        assert_violation(h.verdict(), "no operation on this key ever wrote \"ghost\"");
    }

    #[test]
    fn two_successful_creates_are_a_violation() {
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 10, written(1));
        h.op(1, "k", create("b"), 1, 9, written(2));
        assert_violation(h.verdict(), "requires the key to be absent, but it exists");
    }

    #[test]
    fn revision_going_backwards_is_a_violation() {
        // Within one key: the update's new revision is below the one it
        // replaced (concurrent, so only the per-key search can tell).
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 10, written(5));
        h.op(1, "k", update("b", 5), 1, 9, written(3));
        assert_violation(h.verdict(), "not greater than the one it replaced");

        // Within one key, via reads.
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 1, written(5));
        h.op(1, "k", OpKind::Get, 2, 3, found("a", 5));
        h.op(1, "k", OpKind::Get, 4, 5, found("a", 4));
        assert_violation(h.verdict(), "names a revision other than the current one");

        // Across keys: the counter is global.
        let mut h = Builder::new();
        h.op(0, "k1", create("a"), 0, 1, written(5));
        h.op(0, "k2", create("b"), 2, 3, written(4));
        assert_violation(h.verdict(), "revision went backwards in real time");

        // Duplicate revision across keys.
        let mut h = Builder::new();
        h.op(0, "k1", create("a"), 0, 10, written(5));
        h.op(1, "k2", create("b"), 0, 10, written(5));
        assert_violation(h.verdict(), "reported by two writes");
    }

    #[test]
    fn malformed_histories_are_rejected() {
        let mut h = Builder::new();
        h.op(0, "k", OpKind::Get, 0, 1, written(1));
        assert!(matches!(check(&h.ops, BUDGET), Err(CheckError::Malformed { index: 0, .. })));
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 5, 1, written(1));
        assert!(matches!(check(&h.ops, BUDGET), Err(CheckError::Malformed { .. })));
        let mut h = Builder::new();
        h.op(0, "k", create("a"), 0, 1, written(1));
        h.ops[0].complete = None;
        assert!(matches!(check(&h.ops, BUDGET), Err(CheckError::Malformed { .. })));
    }

    #[test]
    fn history_records_from_many_threads() {
        let history = std::sync::Arc::new(History::new());
        assert!(history.is_empty());
        let base = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|client| {
                let history = history.clone();
                std::thread::spawn(move || {
                    for n in 0..25 {
                        history.record(Operation {
                            client,
                            key: format!("k{client}"),
                            kind: OpKind::Get,
                            invoke: base + Duration::from_millis(2 * n),
                            complete: Some(base + Duration::from_millis(2 * n + 1)),
                            outcome: Outcome::NotFound,
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("recorder thread");
        }
        assert_eq!(history.len(), 100);
        assert_eq!(check(&history.operations(), BUDGET), Ok(Verdict::Linearizable));
    }

    /// SplitMix64: small, deterministic, good enough for test workloads.
    struct Prng(u64);

    impl Prng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }
        fn percent(&mut self, p: u64) -> bool {
            self.below(100) < p
        }
    }

    /// Simulates `clients` sequential clients against a real store. Each
    /// operation takes effect at a random point inside its interval (an
    /// indeterminate one possibly after the client gave up, or never).
    fn simulate(seed: u64, clients: usize, keys: usize, per_client: usize) -> Vec<Operation> {
        struct Plan {
            client: usize,
            key: String,
            choice: u64,
            invoke: u64,
            effect_at: u64,
            complete: u64,
            lost: bool,
            applies: bool,
        }
        let mut rng = Prng(seed);
        let mut plans = Vec::new();
        for client in 0..clients {
            let mut t = rng.below(20);
            for _ in 0..per_client {
                let invoke = t + rng.below(5);
                let effect_at = invoke + 1 + rng.below(10);
                let complete = effect_at + 1 + rng.below(10);
                let lost = rng.percent(5);
                let applies = rng.percent(50);
                // A lost operation may still take effect well after the client moved on.
                let effect_at = if lost { invoke + rng.below(60) } else { effect_at };
                plans.push(Plan {
                    client,
                    key: format!("key{}", rng.below(keys as u64)),
                    choice: rng.below(100),
                    invoke,
                    effect_at,
                    complete,
                    lost,
                    applies,
                });
                t = complete;
            }
        }
        let mut order: Vec<usize> = (0..plans.len()).collect();
        order.sort_by_key(|&i| plans[i].effect_at);
        let base = Instant::now();
        let at = |us: u64| base + Duration::from_micros(us);
        let mut store: HashMap<String, (String, u64)> = HashMap::new();
        let mut revision = 0;
        let mut ops: Vec<Option<Operation>> = (0..plans.len()).map(|_| None).collect();
        for (seq, i) in order.into_iter().enumerate() {
            let p = &plans[i];
            let current = store.get(&p.key).cloned();
            let value = format!("c{}-{seq}", p.client);
            let (kind, outcome) = if p.choice < 35 {
                let outcome = match &current {
                    Some((v, r)) => found(v, *r),
                    None => Outcome::NotFound,
                };
                (OpKind::Get, outcome)
            } else if p.choice < 55 || current.is_none() && p.choice < 70 {
                let outcome = if current.is_some() {
                    Outcome::AlreadyExists
                } else if p.lost && !p.applies {
                    Outcome::Indeterminate
                } else {
                    revision += 1;
                    store.insert(p.key.clone(), (value.clone(), revision));
                    written(revision)
                };
                (create(&value), outcome)
            } else {
                let cur_rev = current.as_ref().map_or(0, |(_, r)| *r);
                let expected = if rng.percent(75) { cur_rev } else { rng.below(cur_rev + 3) };
                let outcome = match &current {
                    None => Outcome::NotFound,
                    Some(_) if expected != cur_rev => Outcome::Conflict,
                    Some(_) if p.lost && !p.applies => Outcome::Indeterminate,
                    Some(_) => {
                        revision += 1;
                        store.insert(p.key.clone(), (value.clone(), revision));
                        written(revision)
                    }
                };
                (update(&value, expected), outcome)
            };
            let outcome = if p.lost { Outcome::Indeterminate } else { outcome };
            let complete = (!p.lost).then(|| at(p.complete));
            ops[i] =
                Some(Operation { client: p.client, key: p.key.clone(), kind, invoke: at(p.invoke), complete, outcome });
        }
        ops.into_iter().flatten().collect()
    }

    #[test]
    fn randomized_simulation_is_linearizable_and_mutation_is_caught() {
        for seed in 1..=8 {
            let mut ops = simulate(seed, 8, 3, 40);
            assert_eq!(ops.len(), 320);
            let started = Instant::now();
            assert_eq!(check(&ops, BUDGET), Ok(Verdict::Linearizable), "seed {seed}");
            assert!(started.elapsed() < BUDGET);

            // Replace one read's value by another value written to that key.
            let target = ops
                .iter()
                .position(|op| matches!(op.outcome, Outcome::Found { .. }))
                .expect("simulation produced a successful read");
            let key = ops[target].key.clone();
            let Outcome::Found { value: seen, .. } = ops[target].outcome.clone() else { unreachable!() };
            let other = ops
                .iter()
                .filter(|op| op.key == key)
                .find_map(|op| match &op.kind {
                    OpKind::Create { value } | OpKind::Update { value, .. } if *value != seen => Some(value.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "never-written".to_owned());
            if let Outcome::Found { value, .. } = &mut ops[target].outcome {
                *value = other;
            }
            match check(&ops, BUDGET) {
                Ok(Verdict::Violation { key: bad, .. }) => assert_eq!(bad, key, "seed {seed}"),
                other => panic!("seed {seed}: expected a violation, got {other:?}"),
            }
        }
    }

    #[test]
    fn zero_budget_times_out() {
        let ops = simulate(42, 8, 3, 40);
        assert!(matches!(check(&ops, Duration::ZERO), Err(CheckError::Timeout { .. })));
    }
}
