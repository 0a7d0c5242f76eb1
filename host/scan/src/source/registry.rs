//! `NAME[:TAG|@DIGEST]`: an image in a registry, over the OCI distribution API
//! ([`distribution`], our client: bounded sizes, times and credentials).
//!
//! * Names are normalised as docker does (`alpine:3.19` is
//!   `docker.io/library/alpine:3.19`).
//! * HTTPS always, except for the hosts listed in `--insecure-registry`.
//! * Credentials are the explicit ones, else (only where [`ResolveOptions::credential_stores`]
//!   allows it: the CLI, never the service) those [`auth::lookup`] finds in the user's
//!   Docker/Podman configuration; the client answers the registry's challenge with them.
//! * The raw manifest is fetched with every manifest type in `Accept` and parsed by
//!   [`manifest`]; its digest is checked when pulling by digest or through an index, and
//!   the config blob is verified before it is parsed.
//! * Transient failures (connection errors, 429, 5xx) are retried a bounded number of
//!   times within a time budget for the manifest, the config and the *start* of each layer
//!   download; once a layer is streaming, an error goes to the layer pipeline, which
//!   reports it.

use std::sync::Arc;

use oci_spec::distribution::Reference;

use super::auth::{self, Credential};
use super::distribution::{ClientOptions, RegistryClient};
use super::manifest::{self, Descriptor, Document, Limits, MAX_INDEX_DEPTH};
use super::{BlobSource, BlobStream, Image, LayerDesc, ResolveOptions, SourceError};

/// What is wrong with `reference`, in the terms a user can fix: the parser's own words are
/// "invalid reference format" for most mistakes, which says nothing about which part.
fn why_not_a_reference(reference: &str, parser: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return format!("the digest {digest:?} is not sha256: followed by 64 hex digits");
        }
    }
    let lower = reference.to_ascii_lowercase();
    if lower != reference && lower.parse::<Reference>().is_ok() {
        return format!("repository names must be lowercase (did you mean {lower}?)");
    }
    // The tag is what follows the last ':' after the last '/'.
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.matches(':').count() > 1 {
        return "more than one ':' in the last part: a tag follows the one ':' after the name"
            .into();
    }
    format!("{parser}; the form is [REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST], NAME lowercase")
}

/// Parse a registry reference. A first component without a dot, a port or `localhost` is
/// a Docker Hub namespace (`harbor/app` is `docker.io/harbor/app`), as docker reads it;
/// callers that mean a registry host check [`Reference::registry`] afterwards.
pub fn parse_reference(reference: &str) -> Result<Reference, SourceError> {
    let parsed: Reference =
        reference
            .parse()
            .map_err(
                |e: oci_spec::distribution::ParseError| SourceError::BadReference {
                    reference: reference.to_string(),
                    message: why_not_a_reference(reference, &e.to_string()),
                },
            )?;
    if let Some(d) = parsed.digest() {
        manifest::digest_hex(d, &parsed.whole())?;
    }
    Ok(parsed)
}

/// Resolve a registry reference to one platform's image.
pub async fn resolve(
    reference: &str,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    let parsed = parse_reference(reference)?;
    let name = parsed.whole();
    let registry = parsed.registry().to_string();
    if let Some(want) = &opts.expected_registry
        && *want != registry
    {
        return Err(SourceError::Invalid {
            what: reference.to_string(),
            message: format!(
                "names registry {registry}, not {want}: a registry host needs a dot, a port or \"localhost\""
            ),
        });
    }
    let limits = Limits::from(opts);

    let explicit = opts.credentials.clone();
    let credential = if opts.credential_stores {
        // Credential helpers are programs; run them off the async threads.
        let host = registry.clone();
        tokio::task::spawn_blocking(move || auth::lookup(&host, explicit.as_ref()))
            .await
            .map_err(|e| SourceError::Io {
                what: name.clone(),
                message: format!("the credential lookup failed: {e}"),
            })??
    } else {
        explicit
    };
    let client = RegistryClient::new(&registry, client_options(&registry, opts, credential))?;
    let remote = Remote {
        client: Arc::new(client),
        repository: parsed.repository().to_string(),
        name,
    };

    let mut current: String = parsed
        .digest()
        .or(parsed.tag())
        .unwrap_or("latest")
        .to_string();
    let mut by_digest = parsed.digest().is_some();
    let mut expected: Option<Descriptor> = None;
    let mut depth = 0;
    let (manifest, manifest_digest) = loop {
        let what = if by_digest {
            format!("{}: manifest {current}", remote.name)
        } else {
            format!("{}: manifest", remote.name)
        };
        let bytes = remote
            .client
            .manifest(&remote.repository, &current, &what)
            .await?;
        let (document, digest) = manifest::received(
            &bytes,
            &what,
            &limits,
            by_digest.then_some(current.as_str()),
            expected.as_ref().map(|d| d.size),
        )?;
        match document {
            Document::Manifest(m) => break (m, digest),
            Document::Index(index) => {
                depth += 1;
                if depth > MAX_INDEX_DEPTH {
                    return Err(SourceError::Invalid {
                        what,
                        message: format!("indexes nested more than {MAX_INDEX_DEPTH} deep"),
                    });
                }
                let chosen =
                    manifest::select_platform(&index, &opts.platform, &remote.name)?.clone();
                current = chosen.digest.clone();
                by_digest = true;
                expected = Some(chosen);
            }
        }
    };

    let config_what = format!("{}: config {}", remote.name, manifest.config.digest);
    limits.check_size(&config_what, manifest.config.size)?;
    let config_bytes = remote
        .client
        .small_blob(
            &remote.repository,
            &manifest.config.digest,
            manifest.config.size,
            &config_what,
        )
        .await?;
    let config = manifest::parse_config(&config_bytes, &config_what, &limits)?;
    let image = manifest::build_image(
        reference,
        Some(manifest_digest),
        &manifest.config.digest,
        &manifest,
        &config,
        &limits,
    )?;
    Ok((image, Arc::new(remote)))
}

/// The client's options for `registry`: plain HTTP where listed, its token hosts, the
/// credential, the limits.
fn client_options(
    registry: &str,
    opts: &ResolveOptions,
    credential: Option<Credential>,
) -> ClientOptions {
    let listed = |hosts: &[String]| {
        hosts.iter().any(|h| {
            let h = h.trim().trim_start_matches("http://").trim_end_matches('/');
            h.eq_ignore_ascii_case(registry)
                || (super::distribution::is_docker_hub(h)
                    && super::distribution::is_docker_hub(registry))
        })
    };
    ClientOptions {
        insecure: listed(&opts.insecure_registries),
        token_hosts: opts.token_hosts.get(registry).cloned().unwrap_or_default(),
        credential,
        limits: opts.registry.clone(),
    }
}

/// One repository of one registry. The [`BlobSource`] of a registry image.
struct Remote {
    client: Arc<RegistryClient>,
    repository: String,
    /// The normalised reference, for messages.
    name: String,
}

#[async_trait::async_trait]
impl BlobSource for Remote {
    async fn open(&self, layer: &LayerDesc) -> Result<BlobStream, SourceError> {
        let what = format!("{}: blob {}", self.name, layer.digest);
        manifest::digest_hex(&layer.digest, &what)?;
        self.client
            .blob(&self.repository, &layer.digest, layer.size, &what)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_like_docker() {
        let r = parse_reference("alpine:3.19").expect("parses");
        assert_eq!(r.whole(), "docker.io/library/alpine:3.19");
        assert_eq!(r.registry(), "docker.io");
        let r = parse_reference("127.0.0.1:5000/team/app@sha256:0123456789012345678901234567890123456789012345678901234567890123")
            .expect("parses");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        // A dotless first component is a Docker Hub namespace: the service refuses such
        // registry URLs, and a worker checks the registry a reference names.
        let r = parse_reference("harbor/team/app:v1").expect("parses");
        assert_eq!(r.registry(), "docker.io");
        assert!(parse_reference("a@sha256:../../x").is_err());
    }

    #[test]
    fn only_listed_registries_get_plain_http() {
        let opts = ResolveOptions {
            insecure_registries: vec!["127.0.0.1:5000".into(), "docker.io".into()],
            ..Default::default()
        };
        assert!(client_options("127.0.0.1:5000", &opts, None).insecure);
        assert!(client_options("docker.io", &opts, None).insecure);
        assert!(!client_options("127.0.0.1:5001", &opts, None).insecure);
        assert!(!client_options("quay.io", &opts, None).insecure);
    }

    #[tokio::test]
    async fn a_reference_to_another_registry_than_expected_is_refused() {
        let opts = ResolveOptions {
            expected_registry: Some("harbor".into()),
            ..Default::default()
        };
        let e = resolve("harbor/team/app@sha256:0123456789012345678901234567890123456789012345678901234567890123", &opts)
            .await
            .err()
            .expect("refused before any request");
        assert!(
            e.to_string()
                .contains("names registry docker.io, not harbor"),
            "{e}"
        );
    }
}
