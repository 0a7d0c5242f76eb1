//! `bulkhead db update`: download the configured feeds and import them, all or nothing.
//!
//! 1. Every selected feed is requested (four at a time). A feed fetched before carries the
//!    `ETag` / `Last-Modified` it came with, remembered in `advisories.db.feeds.json` next to
//!    the database, as `If-None-Match` / `If-Modified-Since`; `304 Not Modified` skips it.
//!    The validators are only sent while the database still holds that feed's import
//!    (same source, same import time): after `db import` replaced the source, or with a new
//!    database, the feed is downloaded in full.
//! 2. Downloads go to temporary files in the database's directory, bounded by
//!    `db.max_download_bytes`. If any feed fails, nothing is imported.
//! 3. All downloaded feeds are imported into one [`Builder`] and committed once, so a feed
//!    that fails to import leaves the old database as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bulkhead_advisories::sources::debian::Releases;
use bulkhead_advisories::{Builder, Store};
use futures::StreamExt;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use super::config::{DbConfig, FeedConfig};
use super::detect::{self, Input};
use super::import;

/// Downloads in flight at once.
const PARALLEL: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the next bytes of a response (not for the whole download).
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// What `db update` remembers per feed URL between runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedState {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// The source's `imported_at` in the database after this download was imported.
    pub imported_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StateFile {
    #[serde(default)]
    pub feeds: BTreeMap<String, FeedState>,
}

/// `advisories.db` → `advisories.db.feeds.json`.
pub fn state_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".feeds.json");
    db.with_file_name(name)
}

impl StateFile {
    /// The state next to `db`; a missing or unreadable file is an empty state (it only
    /// saves downloads, so losing it costs one full update).
    pub fn load(db: &Path) -> StateFile {
        let path = state_path(db);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring {}: {e}", path.display());
                StateFile::default()
            }),
            Err(_) => StateFile::default(),
        }
    }

    fn save(&self, db: &Path) -> Result<()> {
        let path = state_path(db);
        let dir = parent_dir(db);
        let mut tmp = tempfile::Builder::new()
            .prefix(".feeds.json.")
            .tempfile_in(dir)
            .with_context(|| format!("cannot write {}", path.display()))?;
        serde_json::to_writer_pretty(&mut tmp, self)?;
        tmp.write_all(b"\n")?;
        tmp.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

fn parent_dir(db: &Path) -> &Path {
    match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Why a download failed: the host was not reached, it answered without the feed, or
/// the download could not be stored here.
enum FetchError {
    Unreachable(String),
    Refused(String),
    Local(String),
}

enum Outcome {
    NotModified,
    Downloaded {
        file: TempPath,
        bytes: u64,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

struct Fetch<'a> {
    feed: &'a FeedConfig,
    url: Url,
    /// Validators sent with the request.
    conditional: Option<FeedState>,
}

/// Prints the feeds as `[[db.feeds]]` entries with the URL each would be fetched from.
pub fn list(config: &DbConfig, out: &mut dyn Write) -> Result<()> {
    if let Some(m) = &config.mirror {
        writeln!(out, "# db.mirror = {m:?}: URLs below are rewritten to it")?;
    }
    for f in &config.feeds {
        let url = config.effective_url(f)?;
        writeln!(out, "[[db.feeds]]")?;
        writeln!(out, "name = {:?}", f.name)?;
        writeln!(out, "format = {:?}", f.format.as_str())?;
        writeln!(out, "url = {:?}", f.url)?;
        if !f.enabled {
            writeln!(out, "enabled = false")?;
        }
        if url.as_str() != f.url {
            writeln!(out, "# fetched from {url}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

pub async fn run(db: &Path, config: &DbConfig, only: &[String], out: &mut dyn Write) -> Result<()> {
    let feeds = config.select(only)?;
    if feeds.is_empty() {
        bail!("no feeds to update: every [[db.feeds]] entry is disabled (name one with --feed)");
    }
    let mut fetches = Vec::with_capacity(feeds.len());
    for feed in &feeds {
        fetches.push((feed, config.effective_url(feed)?));
    }
    let dir = parent_dir(db);
    let mut state = StateFile::load(db);
    let current = current_imports(db);
    let fetches: Vec<Fetch<'_>> = fetches
        .into_iter()
        .map(|(feed, url)| {
            let conditional = state
                .feeds
                .get(url.as_str())
                .filter(|s| s.source == feed.name && current.get(&s.source) == Some(&s.imported_at))
                .cloned();
            Fetch {
                feed,
                url,
                conditional,
            }
        })
        .collect();

    // oci-client's reqwest and ours are one build, without a crypto provider; install the
    // same one the registry client uses. An error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .context("cannot create the HTTP client")?;
    let max = config.max_download_bytes;
    let results: Vec<Result<Outcome, FetchError>> = futures::stream::iter(fetches.iter())
        .map(|f| fetch(&client, f, dir, max))
        .buffered(PARALLEL)
        .collect()
        .await;

    let mut failures = Vec::new();
    let (mut unreachable, mut refused) = (false, false);
    let mut downloaded = Vec::new();
    for (f, result) in fetches.iter().zip(results) {
        match result {
            Ok(Outcome::NotModified) => {
                writeln!(out, "{}: not modified ({})", f.feed.name, f.url)?;
            }
            Ok(Outcome::Downloaded {
                file,
                bytes,
                etag,
                last_modified,
            }) => {
                writeln!(
                    out,
                    "{}: downloaded {} from {}",
                    f.feed.name,
                    human_bytes(bytes),
                    f.url
                )?;
                downloaded.push((f, file, etag, last_modified));
            }
            Err(FetchError::Unreachable(message)) => {
                unreachable = true;
                failures.push(format!("{}: {message}", f.feed.name));
            }
            Err(FetchError::Refused(message)) => {
                refused = true;
                failures.push(format!("{}: {message}", f.feed.name));
            }
            Err(FetchError::Local(message)) => {
                failures.push(format!("{}: {message}", f.feed.name));
            }
        }
    }
    if !failures.is_empty() {
        let mut hints = Vec::new();
        if unreachable {
            hints.push(
                "If this machine cannot reach these hosts, set `[db] mirror` in the configuration to a reachable copy of the feeds, or fetch the files elsewhere and load them with `bulkhead db import FILE…`.",
            );
        }
        if refused {
            hints.push(
                "A server that answers without the feed: check the `url` of the feed in `[[db.feeds]]`, and that the mirror serves the same paths (`bulkhead db update --list` shows where each feed is fetched from).",
            );
        }
        bail!(
            "{} of {} feeds could not be downloaded, so nothing was imported and the advisory database {} is unchanged:\n  {}\n{}",
            failures.len(),
            fetches.len(),
            db.display(),
            failures.join("\n  "),
            hints.join("\n")
        );
    }
    if downloaded.is_empty() {
        writeln!(out, "every feed is up to date; {} unchanged", db.display())?;
        return Ok(());
    }

    // Everything below is blocking (parsing and SQLite); nothing else runs meanwhile.
    let releases = Releases::builtin();
    let mut builder = Builder::new(db).with_context(|| {
        format!(
            "cannot start from the advisory database {}; move it away to rebuild it",
            db.display()
        )
    })?;
    let mut imported = Vec::new();
    for (f, file, etag, last_modified) in &downloaded {
        let head = detect::read_head(file)?;
        let (_, shape) = detect::sniff_bytes(&head);
        let input = Input {
            path: file.to_path_buf(),
            format: f.feed.format,
            shape,
            source: f.feed.name.clone(),
        };
        let temp = file.display().to_string();
        let url = f.url.to_string();
        let rename = |s: String| s.replace(&temp, &url);
        match import::import_source(&mut builder, &f.feed.name, &[&input], &releases) {
            Ok(report) => {
                import::print_report(out, &report, &rename)?;
                imported.push((*f, etag.clone(), last_modified.clone()));
            }
            Err(import::SourceFailure::Empty(_)) => {
                writeln!(
                    out,
                    "{}: {url} holds no records; the source keeps its previous records",
                    f.feed.name
                )?;
            }
            Err(e) => bail!(
                "feed {} ({} format) failed to import: {}; nothing was imported and the advisory database {} is unchanged",
                f.feed.name,
                f.feed.format,
                rename(crate::text::sanitize(&e.to_string())),
                db.display()
            ),
        }
    }
    builder
        .commit()
        .with_context(|| format!("cannot write the advisory database {}", db.display()))?;
    writeln!(out, "updated {}", db.display())?;

    let now = current_imports(db);
    for (f, etag, last_modified) in imported {
        let Some(imported_at) = now.get(&f.feed.name) else {
            continue;
        };
        state.feeds.insert(
            f.url.to_string(),
            FeedState {
                source: f.feed.name.clone(),
                etag,
                last_modified,
                imported_at: imported_at.clone(),
            },
        );
    }
    if let Err(e) = state.save(db) {
        // The database is updated; only the next update's conditional requests are lost.
        tracing::warn!("{e:#}");
    }
    Ok(())
}

/// Source name → `imported_at` of the database at `db` (empty if there is none).
fn current_imports(db: &Path) -> BTreeMap<String, String> {
    Store::open(db)
        .and_then(|s| s.status())
        .map(|sources| {
            sources
                .into_iter()
                .map(|s| (s.name, s.imported_at.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// One request; the error is a message naming the URL.
async fn fetch(
    client: &reqwest::Client,
    f: &Fetch<'_>,
    dir: &Path,
    max: u64,
) -> Result<Outcome, FetchError> {
    use FetchError::{Local, Refused, Unreachable};
    let url = &f.url;
    let mut request = client.get(url.clone());
    if let Some(s) = &f.conditional {
        if let Some(etag) = &s.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &s.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
    }
    let mut response = request.send().await.map_err(|e| {
        Unreachable(format!(
            "cannot download {url}: {}",
            crate::text::http_error(e)
        ))
    })?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED && f.conditional.is_some() {
        return Ok(Outcome::NotModified);
    }
    if status != StatusCode::OK {
        return Err(Refused(format!("cannot download {url}: HTTP {status}")));
    }
    if let Some(len) = response.content_length()
        && len > max
    {
        return Err(Local(format!(
            "{url} is {len} bytes, more than db.max_download_bytes ({max}); raise that limit if the feed really is this large"
        )));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = header(ETAG);
    let last_modified = header(LAST_MODIFIED);
    let temp = tempfile::Builder::new()
        .prefix(".advisories.download-")
        .tempfile_in(dir)
        .map_err(|e| {
            Local(format!(
                "cannot create a download file in {}: {e}",
                dir.display()
            ))
        })?;
    let std_file = temp
        .as_file()
        .try_clone()
        .map_err(|e| Local(format!("cannot write the download of {url}: {e}")))?;
    let mut file = tokio::fs::File::from_std(std_file);
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        Unreachable(format!(
            "download of {url} broke off: {}",
            crate::text::http_error(e)
        ))
    })? {
        bytes += chunk.len() as u64;
        if bytes > max {
            return Err(Local(format!(
                "{url} is larger than db.max_download_bytes ({max}); raise that limit if the feed really is this large"
            )));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| Local(format!("cannot write the download of {url}: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| Local(format!("cannot write the download of {url}: {e}")))?;
    Ok(Outcome::Downloaded {
        file: temp.into_temp_path(),
        bytes,
        etag,
        last_modified,
    })
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 10_000_000 => format!("{} MB", n / 1_000_000),
        n if n >= 10_000 => format!("{} kB", n / 1000),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_sits_next_to_the_database() {
        assert_eq!(
            state_path(Path::new("/h/db/advisories.db")),
            Path::new("/h/db/advisories.db.feeds.json")
        );
    }

    #[test]
    fn state_round_trips_and_garbage_is_an_empty_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("advisories.db");
        let mut state = StateFile::default();
        state.feeds.insert(
            "http://h/Go/all.zip".into(),
            FeedState {
                source: "osv:Go".into(),
                etag: Some("\"abc\"".into()),
                last_modified: None,
                imported_at: "2026-11-25T00:00:00Z".into(),
            },
        );
        state.save(&db).expect("save");
        assert_eq!(StateFile::load(&db).feeds, state.feeds);
        std::fs::write(state_path(&db), b"{not json").expect("write");
        assert!(StateFile::load(&db).feeds.is_empty());
    }
}
