//! What the service asks a registry itself, besides scans: "what is this reference?" A tag
//! (manual scans) or a digest whose kind the event did not say (Harbor, an index pushed
//! without `includereferences`) is fetched once, with every manifest type in `Accept`, and
//! parsed by the scanner's own manifest parser: an image manifest is one scan, an index is
//! one scan per platform manifest (attestations, `unknown/unknown`, are left out).

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::config::{RegistryConfig, RegistryCredentials};
use bulkhead_scan::source::SourceError;
use bulkhead_scan::source::manifest::{self, Document, Limits, MANIFEST_TYPES};

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

/// Fetch `repository` at `reference` (a tag, or a `sha256:` digest) from `registry`.
pub async fn inspect(
    registry: &RegistryConfig,
    repository: &str,
    reference: &str,
) -> Result<Inspection, SourceError> {
    // oci-client's reqwest is built without a crypto provider; install ours once. An
    // error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sep = if reference.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    let name = format!("{}/{repository}{sep}{reference}", registry.host);
    let parsed: Reference = name.parse().map_err(|e| SourceError::Invalid {
        what: name.clone(),
        message: format!("not an image reference: {e}"),
    })?;
    let auth = match &registry.credentials {
        None => RegistryAuth::Anonymous,
        Some(RegistryCredentials::Basic { username, password }) => {
            RegistryAuth::Basic(username.clone(), password.expose().to_string())
        }
        Some(RegistryCredentials::Token(t)) => RegistryAuth::Bearer(t.expose().to_string()),
    };
    if !header_safe(&auth) {
        return Err(SourceError::Unauthorized {
            registry: registry.name.clone(),
            message: "the configured credentials have characters that cannot be sent".into(),
        });
    }
    let config = ClientConfig {
        protocol: if registry.insecure {
            ClientProtocol::HttpsExcept(vec![registry.host.clone()])
        } else {
            ClientProtocol::Https
        },
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(TIMEOUT),
        user_agent: concat!("bulkhead/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    };
    let client = Client::try_from(config).map_err(|e| SourceError::Network {
        what: name.clone(),
        message: format!("cannot set up the HTTP client: {e}"),
    })?;
    let what = format!("{name}: manifest");
    // In its own task: oci-client unwraps some header values built from server data, and a
    // panic there must be an error here, not a dead request handler.
    let task = {
        let parsed = parsed.clone();
        tokio::spawn(async move {
            client.auth(&parsed, &auth, RegistryOperation::Pull).await?;
            client
                .pull_manifest_raw(&parsed, &auth, &MANIFEST_TYPES)
                .await
        })
    };
    let fetched = tokio::time::timeout(TIMEOUT, task)
        .await
        .map_err(|_| SourceError::Network {
            what: what.clone(),
            message: format!("no answer within {TIMEOUT:?}"),
        })?
        .map_err(|e| SourceError::Network {
            what: what.clone(),
            message: format!("the registry client failed: {e}"),
        })?;
    let (bytes, _) = fetched.map_err(|e| map_error(e, &what, &registry.name))?;
    let limits = Limits {
        max_manifest_bytes: 4 << 20,
        max_layers: 256,
    };
    limits.check_size(&what, bytes.len() as u64)?;
    let digest = manifest::sha256_digest(&bytes);
    if let Some(want) = parsed.digest()
        && want != digest
    {
        return Err(SourceError::DigestMismatch {
            what,
            expected: want.to_string(),
            actual: digest,
        });
    }
    Ok(match manifest::parse_document(&bytes, &what, &limits)? {
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

/// oci-client puts credentials into a header and panics on bytes a header cannot carry.
fn header_safe(auth: &RegistryAuth) -> bool {
    let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    match auth {
        RegistryAuth::Anonymous => true,
        RegistryAuth::Basic(u, p) => printable(u) && printable(p),
        RegistryAuth::Bearer(t) => printable(t),
    }
}

/// Our error for an oci-client failure: not found, refused, or (the transient kind) the
/// network and the server's own troubles.
fn map_error(e: OciDistributionError, what: &str, registry: &str) -> SourceError {
    use oci_client::errors::OciErrorCode;
    let by_status = |code: u16, message: String| match code {
        404 => SourceError::NotFound {
            what: what.to_string(),
        },
        401 | 403 => SourceError::Unauthorized {
            registry: registry.to_string(),
            message: format!("{what}: HTTP {code}"),
        },
        _ => SourceError::Network {
            what: what.to_string(),
            message: format!("HTTP {code}: {message}"),
        },
    };
    match e {
        OciDistributionError::UnauthorizedError { url } => by_status(401, url),
        OciDistributionError::AuthenticationFailure(m) => SourceError::Unauthorized {
            registry: registry.to_string(),
            message: format!("{what}: the token service refused: {m}"),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let known = |c: &OciErrorCode| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            };
            if envelope.errors.iter().any(|e| known(&e.code)) {
                SourceError::NotFound {
                    what: what.to_string(),
                }
            } else if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                SourceError::Unauthorized {
                    registry: registry.to_string(),
                    message: what.to_string(),
                }
            } else {
                SourceError::Network {
                    what: what.to_string(),
                    message: format!("the registry refused: {:?}", envelope.errors),
                }
            }
        }
        OciDistributionError::ServerError { code, message, .. } => by_status(code, message),
        OciDistributionError::RequestError(r) => match r.status() {
            Some(s) => by_status(s.as_u16(), r.to_string()),
            None => SourceError::Network {
                what: what.to_string(),
                message: r.to_string(),
            },
        },
        other => SourceError::Network {
            what: what.to_string(),
            message: other.to_string(),
        },
    }
}
