//! (to be written)

use crate::Action;
use crate::Config;
use crate::Snapshot;

/// The writes this controller wants now.
pub fn reconcile(_snapshot: &Snapshot, _config: &Config) -> Vec<Action> {
    Vec::new()
}
