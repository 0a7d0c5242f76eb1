//! A registry that misbehaves on purpose: the attacker of the hostile-registry tests
//! (`tests/e2e/security/registries.rs`). A small HTTP/1.1 server on `127.0.0.1:0`, one
//! thread per connection, one request per connection (`Connection: close`), that serves a
//! tiny real image (one gzipped layer with `/etc/os-release`) and lies about it the way a
//! [`Behaviour`] says. Every request is recorded ([`HostileRegistry::requests`]) with its
//! `Authorization` header, so tests can check where credentials went.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The repository the image is served under (any name works; this one is documented).
pub const REPOSITORY: &str = "app";
/// The tag the image is served under.
pub const TAG: &str = "v1";

/// How the registry lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Serves the image honestly.
    Honest,
    /// A manifest of `bytes` bytes (a JSON object padded with spaces), with or without a
    /// `Content-Length`; written until the client goes away.
    HugeManifest { bytes: u64, announce: bool },
    /// The manifest, one byte every `every`.
    DripManifest { every: Duration },
    /// The layer blob: half of it, then nothing (the connection stays open).
    StallBlob,
    /// Every manifest request: `503`.
    Unavailable,
    /// The manifest with a `Content-Length` larger than the body, then the connection
    /// closes.
    ShortManifest,
    /// The layer blob announced with one byte more than the manifest says.
    BlobSizeLie,
    /// Manifest requests are redirected between two URLs of the registry, forever.
    RedirectLoop,
    /// Basic authentication required; layer blobs are redirected to `to` (`HOST:PORT`,
    /// another server), as registries redirect to object storage.
    RedirectBlobsTo { to: String },
    /// A Bearer challenge whose realm is the registry's own `/token`, which hands out
    /// tokens that the registry then refuses: a 401 loop.
    UnauthorizedLoop,
    /// A Bearer challenge naming `realm` (a URL on another server) as the token service.
    RealmElsewhere { realm: String },
    /// A Bearer challenge at the registry's own `/token`, which only grants tokens for the
    /// OAuth2 refresh-token grant with `refresh_token` (no Basic credentials).
    IdentityToken { refresh_token: String },
    /// The manifest is an index of `entries` platform entries.
    HugeIndex { entries: usize },
    /// The manifest is an index whose one entry points to a digest the registry answers
    /// with the index itself.
    SelfReference,
}

/// One request the registry received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

/// The served image: manifest, config and layer, and their digests.
#[derive(Debug, Clone)]
pub struct ServedImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layer: Vec<u8>,
    pub layer_digest: String,
}

struct Shared {
    behaviour: Behaviour,
    image: ServedImage,
    blobs: HashMap<String, Vec<u8>>,
    requests: Mutex<Vec<Recorded>>,
    stop: AtomicBool,
    addr: String,
}

/// A running hostile registry; stops when dropped.
pub struct HostileRegistry {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HostileRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileRegistry")
            .field("addr", &self.shared.addr)
            .field("behaviour", &self.shared.behaviour)
            .finish()
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// The tiny image: one gzipped layer with `etc/os-release` (Alpine's, so analyzers see a
/// distribution) and a config that lists it.
pub fn tiny_image() -> ServedImage {
    let os_release = b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME=\"Alpine Linux v3.20\"\n";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(os_release.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "etc/os-release", &os_release[..])
        .expect("tar in memory");
    let tar = b.into_inner().expect("tar in memory");
    let diff_id = sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gzip in memory");
    let layer = gz.finish().expect("gzip in memory");
    let layer_digest = sha256(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "hostile registry test image"}],
    })
    .to_string()
    .into_bytes();
    let config_digest = sha256(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = sha256(&manifest);
    ServedImage {
        manifest,
        manifest_digest,
        config,
        config_digest,
        layer,
        layer_digest,
    }
}

impl HostileRegistry {
    /// Serves on a free loopback port.
    pub fn start(behaviour: Behaviour) -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr").to_string();
        let image = tiny_image();
        let mut blobs = HashMap::new();
        blobs.insert(image.config_digest.clone(), image.config.clone());
        blobs.insert(image.layer_digest.clone(), image.layer.clone());
        let shared = Arc::new(Shared {
            behaviour,
            image,
            blobs,
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            addr,
        });
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, conn);
                });
            }
        });
        HostileRegistry {
            shared,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// `127.0.0.1:PORT/app:v1`.
    pub fn reference(&self) -> String {
        format!("{}/{REPOSITORY}:{TAG}", self.shared.addr)
    }

    /// The image it serves (honestly or not).
    pub fn image(&self) -> &ServedImage {
        &self.shared.image
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.shared.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Read one request head (and a small body, for token POSTs).
fn read_request(conn: &TcpStream) -> io::Result<Recorded> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut authorization = None;
    let mut content_type = None;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(v),
                "content-type" => content_type = Some(v),
                "content-length" => length = v.parse().unwrap_or(0).min(64 << 10),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(Recorded {
        method,
        path,
        authorization,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn respond(
    conn: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}

/// Sleep in small steps until `d` passed or the registry stops.
fn nap(s: &Shared, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !s.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn serve(s: &Shared, mut conn: TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let req = read_request(&conn)?;
    if let Ok(mut r) = s.requests.lock() {
        r.push(req.clone());
    }
    let image = &s.image;
    let manifest_type = "application/vnd.oci.image.manifest.v1+json".to_string();
    let index_type = "application/vnd.oci.image.index.v1+json".to_string();
    let path = req.path.split('?').next().unwrap_or_default().to_string();
    let own_realm = format!("http://{}/token", s.addr);
    let bearer = |realm: &str| {
        (
            "WWW-Authenticate",
            format!(
                r#"Bearer realm="{realm}",service="hostile",scope="repository:{REPOSITORY}:pull""#
            ),
        )
    };

    // Authentication first, where the behaviour wants it.
    match &s.behaviour {
        Behaviour::RedirectBlobsTo { .. } if req.authorization.is_none() => {
            return respond(
                &mut conn,
                "401 Unauthorized",
                &[("WWW-Authenticate", r#"Basic realm="hostile""#.into())],
                b"{}",
            );
        }
        Behaviour::UnauthorizedLoop => {
            if path == "/token" {
                return respond(
                    &mut conn,
                    "200 OK",
                    &[("Content-Type", "application/json".into())],
                    br#"{"token":"never-good-enough"}"#,
                );
            }
            return respond(&mut conn, "401 Unauthorized", &[bearer(&own_realm)], b"{}");
        }
        Behaviour::RealmElsewhere { realm } => {
            return respond(&mut conn, "401 Unauthorized", &[bearer(realm)], b"{}");
        }
        Behaviour::IdentityToken { refresh_token } => {
            if path == "/token" {
                let form: Vec<(String, String)> = req
                    .body
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), crate::http::percent_decode(v)))
                    .collect();
                let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                let ok = req.method == "POST"
                    && req.authorization.is_none()
                    && get("grant_type") == Some("refresh_token")
                    && get("refresh_token") == Some(refresh_token.as_str());
                return if ok {
                    respond(
                        &mut conn,
                        "200 OK",
                        &[("Content-Type", "application/json".into())],
                        br#"{"access_token":"granted-by-refresh"}"#,
                    )
                } else {
                    respond(&mut conn, "401 Unauthorized", &[], b"{}")
                };
            }
            if req.authorization.as_deref() != Some("Bearer granted-by-refresh") {
                return respond(&mut conn, "401 Unauthorized", &[bearer(&own_realm)], b"{}");
            }
        }
        _ => {}
    }

    if path == "/v2/" {
        return respond(&mut conn, "200 OK", &[], b"{}");
    }
    let manifests = format!("/v2/{REPOSITORY}/manifests/");
    let blobs = format!("/v2/{REPOSITORY}/blobs/");
    if let Some(reference) = path.strip_prefix(&manifests) {
        return match &s.behaviour {
            Behaviour::HugeManifest { bytes, announce } => {
                let mut head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n".to_string();
                if *announce {
                    head.push_str(&format!("Content-Length: {bytes}\r\n"));
                }
                head.push_str("\r\n");
                conn.write_all(head.as_bytes())?;
                conn.write_all(b"{")?;
                let chunk = vec![b' '; 64 << 10];
                let mut left = bytes.saturating_sub(1);
                while left > 0 && !s.stop.load(Ordering::SeqCst) {
                    let n = left.min(chunk.len() as u64) as usize;
                    conn.write_all(&chunk[..n])?;
                    left -= n as u64;
                }
                Ok(())
            }
            Behaviour::DripManifest { every } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {manifest_type}\r\nContent-Length: {}\r\n\r\n",
                    image.manifest.len()
                );
                conn.write_all(head.as_bytes())?;
                for b in &image.manifest {
                    conn.write_all(&[*b])?;
                    conn.flush()?;
                    nap(s, *every);
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                Ok(())
            }
            Behaviour::Unavailable => respond(&mut conn, "503 Service Unavailable", &[], b"busy"),
            Behaviour::ShortManifest => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {manifest_type}\r\nContent-Length: {}\r\n\r\n",
                    image.manifest.len() + 1000
                );
                conn.write_all(head.as_bytes())?;
                conn.write_all(&image.manifest)?;
                conn.flush()?;
                conn.shutdown(Shutdown::Both)
            }
            Behaviour::RedirectLoop => {
                let next = if reference.ends_with("-a") {
                    format!("{manifests}{TAG}-b")
                } else {
                    format!("{manifests}{TAG}-a")
                };
                respond(
                    &mut conn,
                    "307 Temporary Redirect",
                    &[("Location", next)],
                    b"",
                )
            }
            Behaviour::HugeIndex { entries } => {
                // Streamed: a million entries is some 200 MB.
                let entry = format!(
                    r#"{{"mediaType":"{manifest_type}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}"#,
                    image.manifest_digest,
                    image.manifest.len()
                );
                let prefix =
                    format!(r#"{{"schemaVersion":2,"mediaType":"{index_type}","manifests":["#);
                let suffix = "]}";
                let n = *entries;
                let length = prefix.len() + n * entry.len() + n.saturating_sub(1) + suffix.len();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {index_type}\r\nContent-Length: {length}\r\n\r\n"
                );
                conn.write_all(head.as_bytes())?;
                conn.write_all(prefix.as_bytes())?;
                let mut batch = Vec::with_capacity(64 << 10);
                for i in 0..n {
                    if i > 0 {
                        batch.push(b',');
                    }
                    batch.extend_from_slice(entry.as_bytes());
                    if batch.len() >= 64 << 10 {
                        conn.write_all(&batch)?;
                        batch.clear();
                    }
                }
                conn.write_all(&batch)?;
                conn.write_all(suffix.as_bytes())
            }
            Behaviour::SelfReference => {
                // An index naming a manifest that is, when asked for, this index again.
                let body = serde_json::json!({
                    "schemaVersion": 2, "mediaType": index_type,
                    "manifests": [{"mediaType": index_type, "digest": image.manifest_digest,
                                   "size": image.manifest.len(),
                                   "platform": {"architecture": "amd64", "os": "linux"}}],
                })
                .to_string();
                respond(
                    &mut conn,
                    "200 OK",
                    &[("Content-Type", index_type.clone())],
                    body.as_bytes(),
                )
            }
            _ => {
                if reference == TAG || reference == image.manifest_digest {
                    let headers = [
                        ("Content-Type", manifest_type.clone()),
                        ("Docker-Content-Digest", image.manifest_digest.clone()),
                    ];
                    if req.method == "HEAD" {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {manifest_type}\r\nDocker-Content-Digest: {}\r\nContent-Length: {}\r\n\r\n",
                            image.manifest_digest,
                            image.manifest.len()
                        );
                        return conn.write_all(head.as_bytes());
                    }
                    respond(&mut conn, "200 OK", &headers, &image.manifest)
                } else {
                    respond(
                        &mut conn,
                        "404 Not Found",
                        &[],
                        br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                    )
                }
            }
        };
    }
    if let Some(digest) = path.strip_prefix(&blobs) {
        let Some(blob) = s.blobs.get(digest) else {
            return respond(&mut conn, "404 Not Found", &[], b"{}");
        };
        let is_layer = digest == image.layer_digest;
        return match &s.behaviour {
            Behaviour::StallBlob if is_layer => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    blob.len()
                );
                conn.write_all(head.as_bytes())?;
                conn.write_all(&blob[..blob.len() / 2])?;
                conn.flush()?;
                nap(s, Duration::from_secs(120));
                Ok(())
            }
            Behaviour::BlobSizeLie if is_layer => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    blob.len() + 1
                );
                conn.write_all(head.as_bytes())?;
                conn.write_all(blob)?;
                conn.write_all(b"\0")
            }
            Behaviour::RedirectBlobsTo { to } if is_layer => respond(
                &mut conn,
                "307 Temporary Redirect",
                &[("Location", format!("http://{to}{path}"))],
                b"",
            ),
            _ => respond(&mut conn, "200 OK", &[], blob),
        };
    }
    respond(&mut conn, "404 Not Found", &[], b"{}")
}
