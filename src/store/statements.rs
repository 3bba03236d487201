//! Every statement the store runs goes through [`Store::sql`], so a test can see what the
//! request paths run and ask the database for each one's plan (issue 9 item 10: no statement on
//! a request path scans a table that grows with use; tests/api/query_plans.rs). Recording is off
//! unless a test switches it on; when off it costs one relaxed atomic load per statement.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::db::Stmt;
use super::Store;

/// The distinct SQL texts run while recording was on.
#[derive(Debug, Default)]
pub(super) struct StatementLog {
    on: AtomicBool,
    seen: Mutex<BTreeSet<String>>,
}

impl Store {
    /// A statement on this store's database, recorded when recording is on.
    pub(super) fn sql<'q>(&self, sql: &'q str) -> Stmt<'q> {
        if self.log.on.load(Ordering::Relaxed) {
            if let Ok(mut seen) = self.log.seen.lock() {
                if !seen.contains(sql) {
                    seen.insert(sql.to_string());
                }
            }
        }
        Stmt::new(sql)
    }

    /// Starts (and clears) or stops recording the statements this store runs, in every clone
    /// of it. For tests: see [`Store::recorded_statements`].
    pub fn record_statements(&self, on: bool) {
        if on {
            if let Ok(mut seen) = self.log.seen.lock() {
                seen.clear();
            }
        }
        self.log.on.store(on, Ordering::Relaxed);
    }

    /// Every distinct statement run while recording was on, sorted.
    pub fn recorded_statements(&self) -> Vec<String> {
        self.log.seen.lock().map(|seen| seen.iter().cloned().collect()).unwrap_or_default()
    }
}
