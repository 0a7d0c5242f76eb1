//! Times 1,000 package lookups against an existing advisory database.
//!
//! ```text
//! cargo run --release -p bulkhead-advisories --example lookup_bench -- /tmp/advisories.db [ROUNDS]
//! ```

use std::time::{Duration, Instant};

use bulkhead_advisories::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().ok_or("usage: lookup_bench DB [ROUNDS]")?;
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let store = Store::open(&db)?;
    let all = store.packages()?;
    let step = (all.len() / 1000).max(1);
    let pairs: Vec<(String, String)> = all.into_iter().step_by(step).take(1000).collect();
    let mut best = Duration::MAX;
    let mut hits = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        hits = 0;
        for (e, p) in &pairs {
            hits += store.lookup(e, p)?.len();
        }
        best = best.min(t.elapsed());
    }
    let mut best_many = Duration::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        let n: usize = store.lookup_many(&pairs)?.iter().map(Vec::len).sum();
        assert_eq!(n, hits);
        best_many = best_many.min(t.elapsed());
    }
    println!(
        "{} packages, {hits} entries; best of {rounds}: lookup one by one {:.2} ms, lookup_many {:.2} ms",
        pairs.len(),
        best.as_secs_f64() * 1e3,
        best_many.as_secs_f64() * 1e3
    );
    Ok(())
}
