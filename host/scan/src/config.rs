//! The configuration file (`$BULKHEAD_HOME/config.toml` or `--config FILE`). Every
//! field has a safe default; unknown keys are errors, so that a typo is not silently
//! ignored.
//!
//! ```toml
//! [sandbox]            # limits for every analyzer call
//! memory_bytes = 536870912
//! time_ms = 10000
//! hostcall_fuel = 67108864
//! max_packages = 200000
//! max_handles = 1024
//! stderr_bytes = 65536
//!
//! [analyzers]
//! dirs = ["/opt/bulkhead/analyzers"]   # third-party modules, besides $BULKHEAD_HOME/analyzers
//! confine_third_party = false          # true: third-party analyzers only where no built-in reads
//!
//! [extract]            # limits for the files given to analyzers, per layer
//! max_total_bytes = 2147483648
//! max_entries = 5000000
//! max_symlink_depth = 40
//! max_file_bytes = 536870912
//!
//! [layers]             # limits for each layer blob
//! max_compressed_bytes = 8589934592
//! max_uncompressed_bytes = 34359738368
//! max_ratio = 100      # uncompressed:compressed, checked past ratio_floor_bytes
//! ratio_floor_bytes = 268435456
//!
//! [cache]
//! max_bytes = 1073741824
//!
//! [registries]
//! insecure = ["localhost:5000"]
//! # Hosts besides a registry's own that may receive its credentials as a token realm.
//! token_hosts = { "registry.example.com" = ["auth.example.com"] }
//!
//! [registries.limits]  # what any registry may make us read and wait for
//! max_manifest_bytes = 4194304
//! max_token_bytes = 1048576
//! max_error_bytes = 65536
//! max_listing_bytes = 16777216
//! connect_timeout_ms = 10000
//! first_byte_timeout_ms = 30000
//! idle_timeout_ms = 30000
//! document_timeout_ms = 60000
//! min_blob_bytes_per_second = 1024
//! attempts = 5
//! retry_budget_ms = 120000
//! max_redirects = 5
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::layers::{ExtractLimits, LayerLimits};
use crate::sandbox::Limits;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub sandbox: Limits,
    pub analyzers: AnalyzersConfig,
    pub extract: ExtractLimits,
    pub layers: LayerLimits,
    pub cache: CacheConfig,
    pub registries: RegistriesConfig,
    pub policy: PolicyConfig,
    /// `[db]`: the feeds `bulkhead db update` fetches (see `crate::db::config`).
    pub db: crate::db::DbConfig,
}

/// How findings are judged (`[policy]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// A finding at or above this severity makes the image unhealthy.
    pub health_threshold: bulkhead_model::Severity,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            health_threshold: bulkhead_model::Severity::High,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Bound of the layer result cache, in bytes (least recently used entries go first).
    pub max_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { max_bytes: 1 << 30 }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistriesConfig {
    /// Registries (`HOST[:PORT]`) reached over plain HTTP.
    pub insecure: Vec<String>,
    /// Per registry (`HOST[:PORT]`), hosts besides its own that may receive its
    /// credentials as a token realm.
    pub token_hosts: std::collections::BTreeMap<String, Vec<String>>,
    /// Sizes and times any registry may make us read and wait for.
    pub limits: crate::source::RegistryLimits,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyzersConfig {
    /// Directories of third-party `*.wasm` analyzers, besides `$BULKHEAD_HOME/analyzers`.
    pub dirs: Vec<PathBuf>,
    /// Restrict third-party analyzers to ecosystems and paths no built-in analyzer covers:
    /// one that declares a built-in's ecosystem is refused at load, and packages it reports
    /// from a file a built-in reads are dropped with a diagnostic.
    pub confine_third_party: bool,
}

impl Config {
    /// Read `path`; `required` says whether a missing file is an error (an explicit
    /// `--config`) or means the defaults (the file in `$BULKHEAD_HOME`).
    pub fn load(path: &Path, required: bool) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read config {}", path.display()));
            }
        };
        let config: Config =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        config
            .registries
            .limits
            .validate()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("invalid config {}: [registries.limits]", path.display()))?;
        Ok(config)
    }
}
