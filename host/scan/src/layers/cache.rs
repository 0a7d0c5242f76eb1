//! The per-layer result cache in `$BULKHEAD_HOME/layers/`.
//!
//! Keys: (layer diff_id, analyzer name, analyzer version, WIT version) for an analyzer's
//! verdict on a layer, and (diff_id, fingerprint of every analyzer's requests) for the
//! layer's whiteouts and extraction diagnostics. A rescan whose layers are all cached
//! downloads no layer; a new analyzer version re-analyses with that analyzer only.
//!
//! Entries are zstd-compressed JSON, written to a temporary file and renamed, so a crash
//! never leaves a half-written entry; an entry that does not decode is deleted and treated
//! as a miss. The cache is bounded: after each scan the least recently used entries
//! (by modification time, refreshed on every hit) are removed until it fits
//! `max_bytes` (Harbor's Trivy adapter grew to 34 GB with no eviction).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// A bounded directory of cache entries.
#[derive(Debug)]
pub struct LayerCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Layers being analysed now, by key: concurrent scans of images sharing a base layer
    /// (a push storm) wait for the first one's result instead of downloading it again.
    inflight: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Held while a layer is analysed (see [`LayerCache::claim`]).
pub struct LayerClaim {
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    inflight: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for LayerClaim {
    fn drop(&mut self) {
        // Forget the lock when nobody else holds or waits for it: the map holds one
        // reference, this claim two (`lock` and the guard); every other claimer holds two
        // as well, while it waits and while it holds the lock.
        if let Ok(mut map) = self.inflight.lock()
            && Arc::strong_count(&self.lock) <= 3
        {
            map.remove(&self.key);
        }
    }
}

/// What eviction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Eviction {
    pub entries: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub removed: u64,
}

impl LayerCache {
    /// Open (creating) the cache directory.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(LayerCache {
            dir: dir.to_path_buf(),
            max_bytes,
            inflight: Arc::default(),
        })
    }

    /// Waits until no other scan of this process is analysing the layer `key`, then
    /// claims it until the returned value is dropped. Look the cache up *after* claiming:
    /// the scan that held the claim has just filled it.
    pub async fn claim(&self, key: &str) -> LayerClaim {
        let lock = {
            // A poisoned map only means another scan panicked while holding it; the map
            // itself is still consistent (inserts and removes are single calls).
            let mut map = self
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(key.to_string()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        LayerClaim {
            key: key.to_string(),
            lock,
            inflight: self.inflight.clone(),
            _guard: guard,
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        let h = hex::encode(Sha256::digest(key.as_bytes()));
        self.dir
            .join(&h[..2])
            .join(format!("{}.json.zst", &h[2..40]))
    }

    /// The value stored under `key`, if any and if it decodes.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        let decoded = zstd::stream::decode_all(&bytes[..])
            .ok()
            .and_then(|json| serde_json::from_slice::<Entry<T>>(&json).ok())
            .filter(|e| e.key == key);
        match decoded {
            Some(entry) => {
                // Mark as recently used for eviction.
                if let Ok(f) = std::fs::File::options().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Some(entry.value)
            }
            None => {
                tracing::warn!(path = %path.display(), "dropping an unreadable layer cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Store `value` under `key`, atomically.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> std::io::Result<()> {
        let path = self.path(key);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent)?;
        let json = serde_json::to_vec(&Entry {
            key: key.to_string(),
            value,
        })
        .map_err(std::io::Error::other)?;
        let compressed = zstd::stream::encode_all(&json[..], 3)?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
        std::io::Write::write_all(&mut tmp, &compressed)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Remove least recently used entries until the cache fits its bound.
    pub fn evict(&self) -> std::io::Result<Eviction> {
        let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for shard in std::fs::read_dir(&self.dir)? {
            let shard = shard?.path();
            if !shard.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&shard)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                if meta.is_file() {
                    files.push((
                        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        meta.len(),
                        entry.path(),
                    ));
                }
            }
        }
        let before: u64 = files.iter().map(|f| f.1).sum();
        let mut after = before;
        let mut removed = 0;
        if before > self.max_bytes {
            files.sort_by_key(|f| f.0);
            for (_, len, path) in &files {
                if after <= self.max_bytes {
                    break;
                }
                if std::fs::remove_file(path).is_ok() {
                    after -= len;
                    removed += 1;
                }
            }
        }
        Ok(Eviction {
            entries: files.len() as u64,
            bytes_before: before,
            bytes_after: after,
            removed,
        })
    }
}

/// The key is stored with the value, so that a hash collision can never return the wrong
/// layer's result.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry<T> {
    key: String,
    value: T,
}

/// Parse a size like `500MB`, `1GiB`, `1073741824`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 500MB or 2GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("invalid size unit {other:?} in {s:?}")),
    };
    Ok((num * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_layer_is_analysed_by_one_scan_at_a_time() {
        let d = tempfile::tempdir().expect("tempdir");
        let c = Arc::new(LayerCache::open(d.path(), 1 << 20).expect("open"));
        let first = c.claim("layer/sha256:a").await;
        // Another layer is not held up.
        drop(c.claim("layer/sha256:b").await);
        let c2 = c.clone();
        let waiter = tokio::spawn(async move {
            let _claim = c2.claim("layer/sha256:a").await;
            c2.get::<u32>("layer/sha256:a")
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "the second claim must wait for the first"
        );
        c.put("layer/sha256:a", &7u32).expect("put");
        drop(first);
        assert_eq!(waiter.await.expect("join"), Some(7));
        // Nobody holds or waits for either layer: the map is empty again.
        assert!(c.inflight.lock().expect("map").is_empty());
    }

    #[test]
    fn round_trip_and_corruption() {
        let d = tempfile::tempdir().expect("tempdir");
        let c = LayerCache::open(d.path(), 1 << 20).expect("open");
        c.put("k1", &vec![1u32, 2, 3]).expect("put");
        assert_eq!(c.get::<Vec<u32>>("k1"), Some(vec![1, 2, 3]));
        assert_eq!(c.get::<Vec<u32>>("k2"), None);
        std::fs::write(c.path("k1"), b"garbage").expect("corrupt");
        assert_eq!(c.get::<Vec<u32>>("k1"), None);
        assert!(!c.path("k1").exists(), "a corrupt entry is removed");
    }

    #[test]
    fn eviction_removes_the_least_recently_used() {
        let d = tempfile::tempdir().expect("tempdir");
        let c = LayerCache::open(d.path(), 0).expect("open");
        let big: Vec<u64> = (0..20_000).map(|i| i * 7919 % 10007).collect();
        for k in ["a", "b", "c"] {
            c.put(k, &big).expect("put");
        }
        let one = std::fs::metadata(c.path("a")).expect("meta").len();
        let c = LayerCache::open(d.path(), one * 2).expect("open");
        // Age every entry, then use "a": "b" is now the oldest.
        let old = SystemTime::now() - std::time::Duration::from_secs(3600);
        for (k, age) in [("a", 1), ("b", 2), ("c", 3)] {
            let f = std::fs::File::options()
                .write(true)
                .open(c.path(k))
                .expect("open");
            f.set_modified(old + std::time::Duration::from_secs(age * 60))
                .expect("mtime");
        }
        assert!(c.get::<Vec<u64>>("a").is_some());
        let e = c.evict().expect("evict");
        assert_eq!(e.removed, 1);
        assert!(!c.path("b").exists() && c.path("a").exists() && c.path("c").exists());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("lots").is_err());
    }
}
