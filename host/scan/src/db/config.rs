//! The `[db]` section of the configuration file: which feeds `bulkhead db update` fetches,
//! and from where.
//!
//! ```toml
//! [db]
//! # Air-gapped sites: every feed URL's scheme and host are replaced by this base URL,
//! # its path is kept (https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip
//! # → https://mirror.example/bulkhead/Debian/all.zip).
//! mirror = "https://mirror.example/bulkhead"
//! max_download_bytes = 2147483648
//!
//! # Giving any feed replaces the whole built-in list (`bulkhead db update --list` prints
//! # it in this form, to copy from).
//! [[db.feeds]]
//! name = "osv:Debian"
//! format = "osv"
//! url = "https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip"
//! # enabled = false   # keep it listed but skip it (`--feed NAME` still fetches it)
//! ```

use anyhow::{Result, bail};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::detect::FeedFormat;

/// Where osv.dev publishes one `all.zip` per ecosystem.
const OSV_BUCKET: &str = "https://osv-vulnerabilities.storage.googleapis.com";

/// OSV ecosystems fetched by default: (ecosystem, its path segment in the bucket).
const OSV_ECOSYSTEMS: &[(&str, &str)] = &[
    ("Debian", "Debian"),
    ("Ubuntu", "Ubuntu"),
    ("Alpine", "Alpine"),
    ("AlmaLinux", "AlmaLinux"),
    ("Rocky Linux", "Rocky%20Linux"),
    ("PyPI", "PyPI"),
    ("npm", "npm"),
    ("Go", "Go"),
    ("crates.io", "crates.io"),
    ("Maven", "Maven"),
];

/// Alpine releases whose secdb is fetched by default: the supported ones when this list
/// was written (November 2026; 3.21 reached its end of life on 1 November 2026). Older
/// releases are covered by osv.dev's Alpine archive. `edge` is Alpine's development branch
/// (and its `_alpha`/`_rc` pre-releases), which osv.dev does not cover.
const ALPINE_RELEASES: &[&str] = &["v3.22", "v3.23", "v3.24", "edge"];

/// Default bound of one download: above the largest osv.dev ecosystem archive and the
/// parsers' 1 GiB per-document limit.
const DEFAULT_MAX_DOWNLOAD: u64 = 2 << 30;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// Base URL that replaces the scheme and host of every feed URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Largest download accepted per feed, in bytes.
    pub max_download_bytes: u64,
    /// The feeds `db update` fetches (default: [`default_feeds`]).
    pub feeds: Vec<FeedConfig>,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            mirror: None,
            max_download_bytes: DEFAULT_MAX_DOWNLOAD,
            feeds: default_feeds(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// The source name its records are stored under; importing it again replaces them.
    pub name: String,
    pub format: FeedFormat,
    /// Upstream location (http or https).
    pub url: String,
    #[serde(default = "enabled", skip_serializing_if = "is_enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

fn is_enabled(e: &bool) -> bool {
    *e
}

/// The feeds fetched when the configuration lists none: osv.dev's archives of the
/// distributions and language ecosystems Bulkhead's analyzers inventory, the Debian
/// tracker, and Alpine's secdb for the supported releases. NVD is not among them: its API
/// hands out 2,000 CVEs per rate-limited request, and it only adds CVSS scores.
pub fn default_feeds() -> Vec<FeedConfig> {
    let mut feeds: Vec<FeedConfig> = OSV_ECOSYSTEMS
        .iter()
        .map(|(ecosystem, segment)| FeedConfig {
            name: format!("osv:{ecosystem}"),
            format: FeedFormat::Osv,
            url: format!("{OSV_BUCKET}/{segment}/all.zip"),
            enabled: true,
        })
        .collect();
    feeds.push(FeedConfig {
        name: "debian-tracker".into(),
        format: FeedFormat::DebianJson,
        url: "https://security-tracker.debian.org/tracker/data/json".into(),
        enabled: true,
    });
    for release in ALPINE_RELEASES {
        for repo in ["main", "community"] {
            feeds.push(FeedConfig {
                name: format!("alpine:{release}/{repo}"),
                format: FeedFormat::Alpine,
                url: format!("https://secdb.alpinelinux.org/{release}/{repo}.json"),
                enabled: true,
            });
        }
    }
    feeds
}

impl DbConfig {
    /// The URL a feed is fetched from: its own, or its path under [`DbConfig::mirror`].
    pub fn effective_url(&self, feed: &FeedConfig) -> Result<Url> {
        let upstream = parse_http_url(&feed.url)
            .map_err(|m| anyhow::anyhow!("feed {}: url {:?}: {m}", feed.name, feed.url))?;
        let Some(mirror) = &self.mirror else {
            return Ok(upstream);
        };
        parse_http_url(mirror).map_err(|m| anyhow::anyhow!("db.mirror {mirror:?}: {m}"))?;
        let mut joined = format!("{}{}", mirror.trim_end_matches('/'), upstream.path());
        if let Some(q) = upstream.query() {
            joined.push('?');
            joined.push_str(q);
        }
        parse_http_url(&joined)
            .map_err(|m| anyhow::anyhow!("feed {}: mirrored url {joined:?}: {m}", feed.name))
    }

    /// The feeds to fetch: those named in `only` (enabled or not), else the enabled ones.
    pub fn select(&self, only: &[String]) -> Result<Vec<&FeedConfig>> {
        let mut names = std::collections::BTreeSet::new();
        for f in &self.feeds {
            if f.name.trim().is_empty() {
                bail!("[[db.feeds]] with url {:?} has an empty name", f.url);
            }
            if !names.insert(f.name.as_str()) {
                bail!("[[db.feeds]] lists the name {:?} twice", f.name);
            }
        }
        if only.is_empty() {
            return Ok(self.feeds.iter().filter(|f| f.enabled).collect());
        }
        let mut out = Vec::new();
        for name in only {
            match self.feeds.iter().find(|f| &f.name == name) {
                Some(f) => {
                    if !out.iter().any(|o: &&FeedConfig| o.name == f.name) {
                        out.push(f);
                    }
                }
                None => bail!(
                    "no feed named {name:?}; configured feeds: {}",
                    self.feeds
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        Ok(out)
    }
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} is not supported (http or https; for files on disk use `bulkhead db import`)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_replaces_scheme_and_host_and_keeps_the_path() {
        let mut cfg = DbConfig::default();
        let rocky = cfg
            .feeds
            .iter()
            .find(|f| f.name == "osv:Rocky Linux")
            .cloned()
            .expect("rocky");
        assert_eq!(
            cfg.effective_url(&rocky).expect("url").as_str(),
            "https://osv-vulnerabilities.storage.googleapis.com/Rocky%20Linux/all.zip"
        );
        cfg.mirror = Some("http://10.0.0.5:8080/feeds/".into());
        assert_eq!(
            cfg.effective_url(&rocky).expect("url").as_str(),
            "http://10.0.0.5:8080/feeds/Rocky%20Linux/all.zip"
        );
        let nvd = FeedConfig {
            name: "nvd".into(),
            format: FeedFormat::Nvd,
            url: "https://services.nvd.nist.gov/rest/json/cves/2.0?startIndex=0".into(),
            enabled: true,
        };
        assert_eq!(
            cfg.effective_url(&nvd).expect("url").as_str(),
            "http://10.0.0.5:8080/feeds/rest/json/cves/2.0?startIndex=0"
        );
        cfg.mirror = Some("file:///mnt/usb".into());
        assert!(cfg.effective_url(&nvd).is_err());
    }

    #[test]
    fn config_round_trips_and_feeds_replace_the_defaults() {
        let text = r#"
            mirror = "https://mirror.example/b"
            [[feeds]]
            name = "osv:Go"
            format = "osv"
            url = "https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip"
            [[feeds]]
            name = "nvd"
            format = "nvd"
            url = "https://nvd.example/page.json"
            enabled = false
        "#;
        let cfg: DbConfig = toml::from_str(text).expect("parse");
        assert_eq!(cfg.feeds.len(), 2);
        assert_eq!(cfg.max_download_bytes, DEFAULT_MAX_DOWNLOAD);
        let selected: Vec<&str> = cfg
            .select(&[])
            .expect("select")
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(selected, ["osv:Go"]);
        assert_eq!(cfg.select(&["nvd".into()]).expect("nvd")[0].name, "nvd");
        assert!(cfg.select(&["osv:npm".into()]).is_err());
        let back: DbConfig = toml::from_str(&toml::to_string(&cfg).expect("ser")).expect("de");
        assert_eq!(back, cfg);
        assert!(
            toml::from_str::<DbConfig>(
                "[[feeds]]\nname = \"x\"\nformat = \"rpm\"\nurl = \"http://h/\""
            )
            .is_err()
        );
    }

    #[test]
    fn defaults_are_valid_and_unique() {
        let cfg = DbConfig::default();
        let feeds = cfg.select(&[]).expect("defaults");
        assert_eq!(
            feeds.len(),
            OSV_ECOSYSTEMS.len() + 1 + 2 * ALPINE_RELEASES.len()
        );
        for f in feeds {
            cfg.effective_url(f).expect(&f.name);
        }
    }
}
