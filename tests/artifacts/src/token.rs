//! A minimal Docker registry token server (the `auth.token` flow of distribution 2.8), run
//! in a thread on `127.0.0.1:0` for tests.
//!
//! `GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]` with optional Basic
//! credentials answers `{"token": JWT, "access_token": JWT, "expires_in": 300}`. The JWT is
//! RS256 with the claims distribution checks (`iss`, `aud`, `exp`, `nbf`, `access`) and a
//! header `kid` that is the *libtrust key ID* of the signing key: distribution 2.8 looks the
//! key up by that ID among the certificates of `auth.token.rootcertbundle`.
//!
//! Policy: the configured user with the right password gets every action it asks for;
//! anonymous clients get `pull` on the repositories listed in `anonymous_pull` (`"*"` for
//! all) and nothing else; a wrong password gets 401.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer};
use sha2::{Digest, Sha256};

/// `iss` of every token and `auth.token.issuer` of the registry.
pub const ISSUER: &str = "bulkhead-test-issuer";
/// `aud` of every token and `auth.token.service` of the registry.
pub const SERVICE: &str = "bulkhead-test-registry";

/// Who may do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// The user that gets every action it asks for.
    pub user: String,
    /// That user's password.
    pub pass: String,
    /// Repositories anonymous clients may pull (`"*"` = every repository).
    pub anonymous_pull: Vec<String>,
}

/// One granted scope of a token (the `access` claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `repository` or `registry`.
    pub kind: String,
    /// Repository name, or `catalog`.
    pub name: String,
    /// Granted actions (`pull`, `push`, `*`, ...); empty when denied.
    pub actions: Vec<String>,
}

/// A request the token server answered, for tests that check what a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The Basic-auth user, `None` for anonymous requests.
    pub user: Option<String>,
    /// The `service` parameter.
    pub service: String,
    /// The `scope` parameters as sent.
    pub scopes: Vec<String>,
    /// What the token grants.
    pub granted: Vec<Access>,
    /// The HTTP status answered (200, or 401 for a wrong password).
    pub status: u16,
}

struct Shared {
    policy: TokenPolicy,
    key: SigningKey<Sha256>,
    kid: String,
    requests: Mutex<Vec<TokenRequest>>,
    counter: AtomicU64,
}

/// A running token server; stops when dropped.
pub struct TokenServer {
    addr: String,
    cert: PathBuf,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("addr", &self.addr)
            .field("kid", &self.shared.kid)
            .finish()
    }
}

impl TokenServer {
    /// Makes an RSA key and a self-signed certificate for it in `dir` (with `openssl req`,
    /// because distribution 2.8 only reads keys from X.509 certificates), then serves tokens
    /// on a free loopback port.
    pub fn start(dir: &Path, policy: TokenPolicy) -> io::Result<TokenServer> {
        let key_path = dir.join("token.key");
        let cert = dir.join("token.crt");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
            ])
            .arg(format!("/CN={ISSUER}"))
            .arg("-keyout")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert)
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("running openssl: {e}")))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "openssl req failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let pem = std::fs::read_to_string(&key_path)?;
        let key = RsaPrivateKey::from_pkcs8_pem(&pem)
            .map_err(|e| io::Error::other(format!("{}: {e}", key_path.display())))?;
        let spki = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| io::Error::other(format!("encoding the public key: {e}")))?;
        let kid = libtrust_key_id(spki.as_bytes());
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let shared = Arc::new(Shared {
            policy,
            key: SigningKey::<Sha256>::new(key),
            kid,
            requests: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("token-server".into())
                .spawn(move || serve(listener, shared, stop))?
        };
        Ok(TokenServer {
            addr,
            cert,
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The URL for the registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The self-signed certificate of the signing key (`auth.token.rootcertbundle`).
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// The libtrust key ID put in every token's `kid` header.
    pub fn kid(&self) -> &str {
        &self.shared.kid
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect_timeout(
            &self
                .addr
                .parse()
                .unwrap_or_else(|_| ([127, 0, 0, 1], 0).into()),
            Duration::from_secs(1),
        );
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let shared = shared.clone();
        // One thread per connection: clients may fetch several tokens at once.
        let _ = std::thread::Builder::new()
            .name("token-conn".into())
            .spawn(move || {
                let _ = handle(conn, &shared);
            });
    }
}

fn handle(mut conn: TcpStream, shared: &Shared) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    let mut head = request_line.len();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        head += n;
        if n == 0 || line.trim().is_empty() || head > 64 * 1024 {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_string());
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" || path != "/token" {
        return respond(&mut conn, 404, "text/plain", b"not found\n");
    }
    let mut service = String::new();
    let mut scopes = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match crate::http::percent_decode(k).as_str() {
            "service" => service = crate::http::percent_decode(v),
            "scope" => scopes.push(crate::http::percent_decode(v)),
            _ => {}
        }
    }
    let user = match authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
    {
        None => None,
        Some(b64) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let (u, p) = decoded.split_once(':').unwrap_or((&decoded, ""));
            if u != shared.policy.user || p != shared.policy.pass {
                record(
                    shared,
                    Some(u.to_string()),
                    &service,
                    &scopes,
                    Vec::new(),
                    401,
                );
                return respond(&mut conn, 401, "text/plain", b"bad credentials\n");
            }
            Some(u.to_string())
        }
    };
    let granted: Vec<Access> = scopes
        .iter()
        .filter_map(|s| grant(&shared.policy, user.is_some(), s))
        .collect();
    let token = sign_token(shared, user.as_deref().unwrap_or(""), &service, &granted)?;
    record(shared, user, &service, &scopes, granted, 200);
    let body = serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 });
    respond(
        &mut conn,
        200,
        "application/json",
        body.to_string().as_bytes(),
    )
}

/// The access granted for one requested scope `type:name:actions` (the name may contain
/// `:`, e.g. never for repositories but the last `:` always separates the actions).
fn grant(policy: &TokenPolicy, authenticated: bool, scope: &str) -> Option<Access> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let wanted = actions.split(',').filter(|a| !a.is_empty());
    let actions: Vec<String> = if authenticated {
        wanted.map(str::to_string).collect()
    } else if kind == "repository" && policy.anonymous_pull.iter().any(|r| r == "*" || r == name) {
        wanted
            .filter(|a| *a == "pull")
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    Some(Access {
        kind: kind.to_string(),
        name: name.to_string(),
        actions,
    })
}

fn record(
    shared: &Shared,
    user: Option<String>,
    service: &str,
    scopes: &[String],
    granted: Vec<Access>,
    status: u16,
) {
    if let Ok(mut r) = shared.requests.lock() {
        r.push(TokenRequest {
            user,
            service: service.to_string(),
            scopes: scopes.to_vec(),
            granted,
            status,
        });
    }
}

fn sign_token(shared: &Shared, sub: &str, service: &str, access: &[Access]) -> io::Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(io::Error::other)?
        .as_secs();
    let n = shared.counter.fetch_add(1, Ordering::SeqCst);
    let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "kid": shared.kid });
    let access: Vec<serde_json::Value> = access
        .iter()
        .map(|a| serde_json::json!({ "type": a.kind, "name": a.name, "actions": a.actions }))
        .collect();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": service,
        "exp": now + 300,
        // A little leeway for clock granularity between us and the registry.
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": format!("{now}-{n}"),
        "access": access,
    });
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = shared.key.sign(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", b64(&sig.to_bytes())))
}

fn respond(conn: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()?;
    let _ = conn.shutdown(Shutdown::Write);
    Ok(())
}

/// The libtrust key ID of a public key given as DER SubjectPublicKeyInfo: the first 240 bits
/// of its SHA-256, base32 (RFC 4648, no padding), in 12 groups of 4 joined by `:`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = Sha256::digest(spki_der);
    let b32 = base32(&digest[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32 without padding.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        // RFC 4648 section 10, without the padding.
        for (input, want) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn key_id_has_twelve_groups_of_four() {
        let kid = libtrust_key_id(b"anything");
        let groups: Vec<&str> = kid.split(':').collect();
        assert_eq!(groups.len(), 12, "{kid}");
        assert!(groups.iter().all(|g| g.len() == 4));
    }

    #[test]
    fn anonymous_clients_get_pull_only_where_configured() {
        let policy = TokenPolicy {
            user: "u".into(),
            pass: "p".into(),
            anonymous_pull: vec!["public".into()],
        };
        let g = grant(&policy, false, "repository:public:pull,push").expect("scope");
        assert_eq!(g.actions, vec!["pull"]);
        let g = grant(&policy, false, "repository:private:pull").expect("scope");
        assert!(g.actions.is_empty());
        let g = grant(&policy, true, "repository:private:pull,push").expect("scope");
        assert_eq!(g.actions, vec!["pull", "push"]);
        let g = grant(&policy, true, "registry:catalog:*").expect("scope");
        assert_eq!(
            (g.kind.as_str(), g.name.as_str(), g.actions.clone()),
            ("registry", "catalog", vec!["*".to_string()])
        );
        assert!(grant(&policy, true, "nonsense").is_none());
    }
}
