//! What the service asks a registry itself, besides scans: "what is this reference?" A tag
//! (manual scans) or a digest whose kind the event did not say (Harbor, an index pushed
//! without `includereferences`) is fetched once, with every manifest type in `Accept`, and
//! parsed by the scanner's own manifest parser: an image manifest is one scan, an index is
//! one scan per platform manifest (attestations, `unknown/unknown`, are left out).

use std::time::Duration;

use super::config::RegistryConfig;
use bulkhead_scan::source::manifest::{self, Document, Limits};
use bulkhead_scan::source::{RegistryLimits, SourceError};

/// How long one look-up may take: the webhook answers the registry only afterwards.
const TIMEOUT: Duration = Duration::from_secs(20);

/// One manifest to scan, as found in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub digest: String,
    pub media_type: String,
    /// `os/arch[/variant]`, from the index entry.
    pub platform: Option<String>,
}

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The digest of the document the reference names (the index's, for an index).
    pub digest: String,
    pub media_type: String,
    /// The image manifests to scan: the manifest itself, or the index's platforms.
    pub manifests: Vec<Found>,
}

/// Is the failure worth trying again later (the registry is down, slow or overloaded)?
pub fn transient(e: &SourceError) -> bool {
    e.disposition() == bulkhead_scan::image::Disposition::Transient
}

/// Fetch `repository` at `reference` (a tag, or a `sha256:` digest) from `registry`, with
/// the registry client every path uses (bounded sizes and times, credentials only to the
/// registry and its allowed token hosts).
pub async fn inspect(
    registry: &RegistryConfig,
    limits: &RegistryLimits,
    repository: &str,
    reference: &str,
) -> Result<Inspection, SourceError> {
    let by_digest = reference.starts_with("sha256:");
    let sep = if by_digest { '@' } else { ':' };
    let name = format!("{}/{repository}{sep}{reference}", registry.host);
    if by_digest {
        manifest::digest_hex(reference, &name)?;
    }
    let what = format!("{name}: manifest");
    let client = registry.client(limits)?;
    let bytes = tokio::time::timeout(TIMEOUT, client.manifest(repository, reference, &what))
        .await
        .map_err(|_| SourceError::Network {
            what: what.clone(),
            message: format!("no answer within {TIMEOUT:?}"),
        })??;
    let limits = Limits {
        max_manifest_bytes: limits.max_manifest_bytes,
        max_layers: 256,
    };
    let (document, digest) =
        manifest::received(&bytes, &what, &limits, by_digest.then_some(reference), None)?;
    Ok(match document {
        Document::Manifest(m) => Inspection {
            digest: digest.clone(),
            media_type: m.media_type.clone(),
            manifests: vec![Found {
                digest,
                media_type: m.media_type,
                platform: None,
            }],
        },
        Document::Index(index) => {
            let mut manifests: Vec<Found> = Vec::new();
            for d in index.manifests {
                let attestation = d
                    .annotations
                    .get("vnd.docker.reference.type")
                    .is_some_and(|v| v == "attestation-manifest")
                    || d.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
                let image = matches!(
                    d.media_type.as_str(),
                    manifest::OCI_MANIFEST | manifest::DOCKER_MANIFEST
                );
                if image && !attestation && !manifests.iter().any(|f| f.digest == d.digest) {
                    manifests.push(Found {
                        digest: d.digest,
                        media_type: d.media_type,
                        platform: d.platform.map(|p| p.to_string()),
                    });
                }
            }
            Inspection {
                digest,
                media_type: index.media_type,
                manifests,
            }
        }
    })
}
