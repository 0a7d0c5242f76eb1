//! `NAME[:TAG|@DIGEST]`: an image in a registry, over the OCI distribution API
//! (`oci-client`).
//!
//! * Names are normalised as docker does (`alpine:3.19` is
//!   `docker.io/library/alpine:3.19`).
//! * HTTPS always, except for the hosts listed in `--insecure-registry`.
//! * Credentials come from [`auth::lookup`]; `oci-client` turns them into anonymous,
//!   Basic or Bearer-token requests (it runs the token flow of the `WWW-Authenticate`
//!   challenge itself).
//! * The raw manifest is fetched with every manifest type in `Accept` and parsed by
//!   [`manifest`]; its digest is checked when pulling by digest or through an index, and
//!   the config blob is verified before it is parsed.
//! * Transient failures (connection errors, 429, 5xx) are retried with exponential
//!   backoff for the manifest, the config and the *start* of each layer download; once a
//!   layer is streaming, an error goes to the layer pipeline, which reports it.
//! * Calls into `oci-client` run in their own task, so that a panic in it on hostile
//!   input (it unwraps some header values built from server data) is an error here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::auth::{self, Credential};
use super::manifest::{self, Descriptor, Document, Limits, MANIFEST_TYPES, MAX_INDEX_DEPTH};
use super::{BlobSource, BlobStream, Image, LayerDesc, ResolveOptions, SourceError};

/// Tries per request: the first and four retries after 200 ms, 400 ms, 800 ms, 1.6 s.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Resolve a registry reference to one platform's image.
pub async fn resolve(
    reference: &str,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    // oci-client's reqwest is built without a crypto provider; install ours once. An
    // error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let parsed: Reference = reference.parse().map_err(|e| SourceError::Invalid {
        what: reference.to_string(),
        message: format!("not an image reference: {e}"),
    })?;
    let name = parsed.whole();
    if let Some(d) = parsed.digest() {
        manifest::digest_hex(d, &name)?;
    }
    let limits = Limits::from(opts);
    let registry = parsed.registry().to_string();

    // Credential helpers are programs; run them off the async threads.
    let explicit = opts.credentials.clone();
    let host = registry.clone();
    let credential = tokio::task::spawn_blocking(move || auth::lookup(&host, explicit.as_ref()))
        .await
        .map_err(|e| SourceError::Io {
            what: name.clone(),
            message: format!("the credential lookup failed: {e}"),
        })??;
    // Client::new would fall back to a default configuration (HTTPS everywhere, other
    // timeouts) if this one cannot be built; failing is clearer.
    let client =
        Client::try_from(client_config(&parsed, opts)).map_err(|e| SourceError::Network {
            what: name.clone(),
            message: format!("cannot set up the HTTP client: {e}"),
        })?;
    let remote = Remote {
        client,
        auth: registry_auth(credential, &registry)?,
        reference: parsed,
        name,
        registry,
    };

    // Authenticate first, so that a refused token request is reported as such (later
    // requests would only see a bare 401).
    remote
        .retry(&remote.name, |r| async move {
            r.client
                .auth(&r.reference, &r.auth, RegistryOperation::Pull)
                .await
                .map(|_| ())
        })
        .await?;

    let mut current = remote.reference.clone();
    let mut expected: Option<Descriptor> = None;
    let mut depth = 0;
    let (manifest, manifest_digest) = loop {
        let what = match current.digest() {
            Some(d) => format!("{}: manifest {d}", remote.name),
            None => format!("{}: manifest", remote.name),
        };
        let target = current.clone();
        let (bytes, _) = remote
            .retry(&what, move |r| {
                let target = target.clone();
                async move {
                    r.client
                        .pull_manifest_raw(&target, &r.auth, &MANIFEST_TYPES)
                        .await
                }
            })
            .await?;
        limits.check_size(&what, bytes.len() as u64)?;
        let digest = manifest::sha256_digest(&bytes);
        if let Some(want) = current.digest()
            && want != digest
        {
            return Err(SourceError::DigestMismatch {
                what,
                expected: want.to_string(),
                actual: digest,
            });
        }
        if let Some(d) = &expected
            && d.size != bytes.len() as u64
        {
            return Err(SourceError::Invalid {
                what,
                message: format!("{} bytes, the index says {}", bytes.len(), d.size),
            });
        }
        match manifest::parse_document(&bytes, &what, &limits)? {
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
                current = remote.reference.clone_with_digest(chosen.digest.clone());
                expected = Some(chosen);
            }
        }
    };

    let config_what = format!("{}: config {}", remote.name, manifest.config.digest);
    let config_bytes = remote
        .fetch_small_blob(&manifest.config, &config_what, &limits)
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

/// The client configuration: HTTPS except for the insecure registries, no platform
/// resolver (indexes are resolved here, with our platform rules), bounded waits.
fn client_config(reference: &Reference, opts: &ResolveOptions) -> ClientConfig {
    let mut plain_http: Vec<String> = Vec::new();
    for host in &opts.insecure_registries {
        let host = host
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/');
        plain_http.push(host.to_string());
        // oci-client compares with the resolved host, which differs for Docker Hub.
        if host == reference.registry() {
            plain_http.push(reference.resolve_registry().to_string());
        }
    }
    ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain_http),
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(120)),
        user_agent: concat!("bulkhead/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    }
}

fn registry_auth(
    credential: Option<Credential>,
    registry: &str,
) -> Result<RegistryAuth, SourceError> {
    // oci-client puts these into an Authorization header and panics if they are not
    // valid header text: check first.
    let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    Ok(match credential {
        None => RegistryAuth::Anonymous,
        Some(Credential::Basic { username, password }) => {
            if !printable(&username) || !printable(&password) {
                return Err(SourceError::Unauthorized {
                    registry: registry.to_string(),
                    message: "the username or password has characters that cannot be sent".into(),
                });
            }
            RegistryAuth::Basic(username, password)
        }
        Some(Credential::Bearer(token)) => {
            if !printable(&token) {
                return Err(SourceError::Unauthorized {
                    registry: registry.to_string(),
                    message: "the token has characters that cannot be sent".into(),
                });
            }
            RegistryAuth::Bearer(token)
        }
    })
}

/// One repository of one registry, with its credentials. Also the [`BlobSource`].
#[derive(Clone)]
struct Remote {
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
    /// The normalised reference, for messages.
    name: String,
    /// The registry host as written (`docker.io`), for messages.
    registry: String,
}

impl Remote {
    /// Run `op` (in its own task) until it succeeds, fails for good, or runs out of tries.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: Fn(Remote) -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>> + Send + 'static,
    {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result =
                tokio::spawn(op(self.clone()))
                    .await
                    .map_err(|e| SourceError::Network {
                        what: what.to_string(),
                        message: format!("the registry client failed: {e}"),
                    })?;
            match result {
                Ok(v) => return Ok(v),
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                    tracing::debug!("{what}: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(e) => {
                    let mut err = map_error(e, what, &self.registry);
                    if attempt > 1
                        && let SourceError::Network { message, .. } = &mut err
                    {
                        message.push_str(&format!(" (after {attempt} tries)"));
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Download a config blob, bounded by its descriptor and the limits, and verify it.
    async fn fetch_small_blob(
        &self,
        desc: &Descriptor,
        what: &str,
        limits: &Limits,
    ) -> Result<Vec<u8>, SourceError> {
        limits.check_size(what, desc.size)?;
        let digest = desc.digest.clone();
        let mut stream = self
            .retry(what, move |r| {
                let digest = digest.clone();
                async move {
                    r.client
                        .pull_blob_stream(&r.reference, digest.as_str())
                        .await
                }
            })
            .await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| stream_error(e, what))?;
            if bytes.len() as u64 + chunk.len() as u64 > desc.size {
                return Err(SourceError::Invalid {
                    what: what.to_string(),
                    message: format!("larger than the {} bytes its descriptor says", desc.size),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        manifest::verify_blob(what, &bytes, &desc.digest, Some(desc.size))?;
        Ok(bytes)
    }
}

#[async_trait::async_trait]
impl BlobSource for Remote {
    async fn open(&self, layer: &LayerDesc) -> Result<BlobStream, SourceError> {
        let what = format!("{}: blob {}", self.name, layer.digest);
        manifest::digest_hex(&layer.digest, &what)?;
        let digest = layer.digest.clone();
        let sized = self
            .retry(&what, move |r| {
                let digest = digest.clone();
                async move {
                    r.client
                        .pull_blob_stream(&r.reference, digest.as_str())
                        .await
                }
            })
            .await?;
        Ok(Box::pin(tokio_util::io::StreamReader::new(sized.stream)))
    }
}

/// Our error for a failure while a blob streams. oci-client checks the digest as the
/// stream ends and reports a mismatch as an `io::Error` wrapping its `DigestError`.
fn stream_error(e: std::io::Error, what: &str) -> SourceError {
    if let Some(oci_client::errors::DigestError::VerificationError { expected, actual }) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>())
    {
        return SourceError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            actual: actual.clone(),
        };
    }
    SourceError::Network {
        what: what.to_string(),
        message: error_chain(&e),
    }
}

/// Whether a failure may go away by itself: rate limits, server errors, the network.
fn retryable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code == 429 || (500..600).contains(code),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        OciDistributionError::RequestError(r) => {
            // TLS failures (a plain-HTTP server, a bad certificate) do not heal by waiting.
            let chain = error_chain(r);
            if chain.contains("InvalidContentType") || chain.contains("certificate") {
                return false;
            }
            r.is_connect()
                || r.is_timeout()
                || r.is_request()
                || r.is_body()
                || r.status()
                    .is_some_and(|s| s.as_u16() == 429 || s.is_server_error())
        }
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// At most 300 characters of a server's message.
fn short(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= 300 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(300).collect::<String>())
    }
}

/// Our error for an `oci-client` failure of the request `what`.
fn map_error(e: OciDistributionError, what: &str, registry: &str) -> SourceError {
    let unauthorized = |message: String| SourceError::Unauthorized {
        registry: registry.to_string(),
        message: format!("{what}: {message}"),
    };
    let by_status = |code: u16, message: String| match code {
        // Docker Hub answers 401 for repositories that do not exist, too.
        401 => unauthorized(format!(
            "HTTP 401 (or the repository does not exist): {message}"
        )),
        403 => unauthorized(format!("HTTP 403: {message}")),
        404 => SourceError::NotFound {
            what: what.to_string(),
        },
        _ => SourceError::Network {
            what: what.to_string(),
            message: format!("HTTP {code}: {message}"),
        },
    };
    match e {
        OciDistributionError::UnauthorizedError { url } => by_status(401, url),
        OciDistributionError::AuthenticationFailure(m) => {
            unauthorized(format!("the token service refused: {}", short(&m)))
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let message = short(
                &envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized(message)
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                SourceError::NotFound {
                    what: what.to_string(),
                }
            } else {
                SourceError::Network {
                    what: what.to_string(),
                    message: format!("the registry refused: {message}"),
                }
            }
        }
        OciDistributionError::ServerError { code, message, .. } => by_status(code, short(&message)),
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => SourceError::DigestMismatch {
            what: what.to_string(),
            expected,
            actual,
        },
        OciDistributionError::RequestError(r) => match r.status() {
            Some(s) => by_status(s.as_u16(), r.to_string()),
            None => {
                let mut message = error_chain(&r);
                // rustls' words for "the server answered TLS with plain HTTP".
                if message.contains("InvalidContentType") {
                    message.push_str(&format!(
                        " (does {registry} speak plain HTTP? allow it with --insecure-registry {registry})"
                    ));
                }
                SourceError::Network {
                    what: what.to_string(),
                    message,
                }
            }
        },
        other => SourceError::Network {
            what: what.to_string(),
            message: short(&other.to_string()),
        },
    }
}

/// An error and its causes, cut to a readable length.
fn error_chain(e: &dyn std::error::Error) -> String {
    short(&crate::text::error_chain(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_like_docker() {
        let r: Reference = "alpine:3.19".parse().expect("parses");
        assert_eq!(r.whole(), "docker.io/library/alpine:3.19");
        assert_eq!(r.registry(), "docker.io");
        let r: Reference = "127.0.0.1:5000/team/app@sha256:0123456789012345678901234567890123456789012345678901234567890123"
            .parse()
            .expect("parses");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
    }

    #[test]
    fn only_listed_registries_get_plain_http() {
        let r: Reference = "docker.io/library/alpine".parse().expect("parses");
        let opts = ResolveOptions {
            insecure_registries: vec!["127.0.0.1:5000".into(), "docker.io".into()],
            ..Default::default()
        };
        match client_config(&r, &opts).protocol {
            ClientProtocol::HttpsExcept(hosts) => {
                assert_eq!(hosts, ["127.0.0.1:5000", "docker.io", "index.docker.io"])
            }
            other => panic!("expected HttpsExcept, got {other:?}"),
        }
    }

    #[test]
    fn unsendable_credentials_are_refused_not_panicked_on() {
        let bad = Credential::Bearer("abc\ndef".into());
        assert!(matches!(
            registry_auth(Some(bad), "r"),
            Err(SourceError::Unauthorized { .. })
        ));
        assert!(matches!(
            registry_auth(None, "r"),
            Ok(RegistryAuth::Anonymous)
        ));
    }

    #[test]
    fn errors_map_by_status() {
        let e = map_error(
            OciDistributionError::ServerError {
                code: 404,
                url: "u".into(),
                message: String::new(),
            },
            "x: manifest",
            "reg",
        );
        assert!(matches!(e, SourceError::NotFound { .. }));
        let e = map_error(
            OciDistributionError::UnauthorizedError { url: "u".into() },
            "x",
            "reg",
        );
        assert!(matches!(e, SourceError::Unauthorized { .. }));
        assert!(retryable(&OciDistributionError::ServerError {
            code: 503,
            url: "u".into(),
            message: String::new()
        }));
        assert!(retryable(&OciDistributionError::ServerError {
            code: 429,
            url: "u".into(),
            message: String::new()
        }));
        assert!(!retryable(&OciDistributionError::ServerError {
            code: 404,
            url: "u".into(),
            message: String::new()
        }));
    }
}
