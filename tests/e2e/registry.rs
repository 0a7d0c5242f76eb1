//! Real registries on loopback (Debian's `docker-registry`, distribution 2.8) without auth,
//! with htpasswd and with token auth; images built in the test and pushed with skopeo; the
//! registry's own HTTP API as the oracle that the push landed.
//!
//! Needs the apt packages docker-registry, skopeo, apache2-utils and openssl: without them
//! the tests skip, except in CI (`CI` set), where they fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use bulkhead_test_artifacts::http;
use bulkhead_test_artifacts::images::{
    self, Compression, Image, MEDIA_INDEX, MEDIA_MANIFEST, hostile,
};
use bulkhead_test_artifacts::registry::{self, Auth, Notifications, Options, Registry};
use bulkhead_test_artifacts::require_tools;
use bulkhead_test_artifacts::skopeo::{self, DestCompression, Format, PushOptions};
use serde_json::Value;

const USER: &str = "scanner";
const PASS: &str = "s3cret";

/// Every manifest type, as registry clients send it (without it OCI manifests are 404 and
/// Docker ones are converted to schema 1).
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.docker.distribution.manifest.v2+json";

fn tools() -> bool {
    require_tools(registry::TOOLS)
}

/// Pushes `image` to `reg` as `name` (tag: the image's) with the registry's credentials.
fn push_image(reg: &Registry, image: &Image, name: &str, options: &PushOptions) {
    skopeo::push_with(
        &image.layout,
        &image.tag,
        reg.addr(),
        reg.creds(),
        name,
        options,
    )
    .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", reg.log()));
}

/// `alpine:3.20` (the upstream minirootfs layer), pushed as `name:3.20`.
fn push_alpine(reg: &Registry, name: &str) -> Image {
    let image = images::alpine("3.20");
    push_image(reg, &image, name, &PushOptions::default());
    image
}

/// The Debian minbase fixture image, pushed as `name:bookworm` in `format`.
fn push_debian(reg: &Registry, name: &str, format: Format) -> Image {
    let image = images::debian_minbase();
    push_image(
        reg,
        &image,
        name,
        &PushOptions {
            format: Some(format),
            ..PushOptions::default()
        },
    );
    image
}

/// The 4-layer whiteout/opaque/upgrade image, pushed as `name:latest`.
fn push_layered(reg: &Registry, name: &str) -> Image {
    let image = images::layered();
    push_image(reg, &image, name, &PushOptions::default());
    image
}

/// The layered image with gzip, zstd, plain and zstd layers, pushed as `name:latest`.
fn push_layered_mixed(reg: &Registry, name: &str) -> Image {
    let image = images::layered_mixed();
    push_image(reg, &image, name, &PushOptions::default());
    image
}

/// The amd64 + arm64/v8 index, pushed (with `--all`) as `name:latest`.
fn push_multi_platform(reg: &Registry, name: &str) -> Image {
    let image = images::multi_platform();
    push_image(reg, &image, name, &PushOptions::default());
    image
}

/// GET a manifest by tag or digest as the registry's user.
fn manifest(reg: &Registry, name: &str, reference: &str) -> http::Response {
    reg.get_as(
        &format!("/v2/{name}/manifests/{reference}"),
        reg.creds(),
        &[("Accept", ACCEPT)],
    )
    .unwrap_or_else(|e| panic!("GET manifest {name}:{reference}: {e}"))
}

fn json(resp: &http::Response) -> Value {
    resp.json().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn anonymous_registry_receives_oci_and_docker_images() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let alpine = push_alpine(&reg, "alpine");
    let tags = http::get(reg.addr(), "/v2/alpine/tags/list", &[]).expect("tags/list");
    assert_eq!(tags.status, 200, "{}", tags.text());
    assert_eq!(json(&tags)["tags"], serde_json::json!(["3.20"]));
    // skopeo pushed the OCI manifest byte for byte: the registry names it by our digest.
    let m = manifest(&reg, "alpine", "3.20");
    assert_eq!(m.status, 200, "{}", m.text());
    assert_eq!(
        m.header("Docker-Content-Digest"),
        Some(alpine.descriptor().digest.as_str())
    );

    push_debian(&reg, "debian", Format::V2s2);
    assert_eq!(reg.tags("debian"), ["bookworm"]);
    let m = manifest(&reg, "debian", "bookworm");
    assert_eq!(
        json(&m)["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(reg.catalog(), ["alpine", "debian"]);
}

#[test]
fn htpasswd_registry_requires_the_user() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::htpasswd(USER, PASS));
    let anon = http::get(reg.addr(), "/v2/", &[]).expect("GET /v2/");
    assert_eq!(anon.status, 401);
    assert!(
        anon.header("WWW-Authenticate")
            .is_some_and(|c| c.starts_with("Basic")),
        "{:?}",
        anon.headers
    );

    let image = images::layered();
    let err = skopeo::push(&image.layout, &image.tag, reg.addr(), None, "layered")
        .expect_err("an anonymous push must be refused");
    assert!(
        err.to_string().contains("unauthorized") || err.to_string().contains("401"),
        "{err}"
    );
    let err = skopeo::push(
        &image.layout,
        &image.tag,
        reg.addr(),
        Some((USER, "wrong")),
        "layered",
    )
    .expect_err("a wrong password must be refused");
    assert!(!err.to_string().is_empty());

    push_layered(&reg, "layered");
    let basic = http::basic_auth(USER, PASS);
    let tags = http::get(
        reg.addr(),
        "/v2/layered/tags/list",
        &[("Authorization", &basic)],
    )
    .expect("tags/list");
    assert_eq!(tags.status, 200, "{}", tags.text());
    assert_eq!(json(&tags)["tags"], serde_json::json!(["latest"]));
    let wrong = http::get(
        reg.addr(),
        "/v2/layered/tags/list",
        &[("Authorization", &http::basic_auth(USER, "x"))],
    )
    .expect("tags/list");
    assert_eq!(wrong.status, 401);
}

#[test]
fn token_registry_grants_push_to_the_user_and_pull_to_anonymous_where_configured() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::token(USER, PASS, &["public"]));
    let anon = http::get(reg.addr(), "/v2/", &[]).expect("GET /v2/");
    assert_eq!(anon.status, 401);
    let challenge = anon
        .header("WWW-Authenticate")
        .unwrap_or_default()
        .to_string();
    let realm = reg.token_server().expect("token server").realm();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(&realm),
        "{challenge}"
    );

    let public = push_layered(&reg, "public");
    push_alpine(&reg, "private");
    let image = images::alpine("3.12");
    let err = skopeo::push(&image.layout, &image.tag, reg.addr(), None, "public")
        .expect_err("anonymous clients never push");
    assert!(
        err.to_string().contains("denied") || err.to_string().contains("unauthorized"),
        "{err}"
    );

    assert_eq!(reg.tags("public"), ["latest"]);
    assert_eq!(reg.tags("private"), ["3.20"]);
    assert_eq!(
        reg.catalog(),
        ["private", "public"],
        "registry:catalog:* for the user"
    );
    let anon_public = reg.get_anonymous("/v2/public/tags/list");
    assert_eq!(anon_public.status, 200, "{}", anon_public.text());
    assert_eq!(json(&anon_public)["tags"], serde_json::json!(["latest"]));
    let anon_private = reg.get_anonymous("/v2/private/tags/list");
    assert_eq!(anon_private.status, 401, "{}", anon_private.text());
    let m = reg
        .get_as("/v2/public/manifests/latest", None, &[("Accept", ACCEPT)])
        .expect("anonymous manifest GET");
    assert_eq!(
        m.header("Docker-Content-Digest"),
        Some(public.descriptor().digest.as_str())
    );

    // The token server saw the user ask for push, and granted anonymous pull only.
    let requests = reg.token_server().expect("token server").requests();
    assert!(
        requests.iter().any(|r| r.user.as_deref() == Some(USER)
            && r.granted
                .iter()
                .any(|a| a.name == "private" && a.actions.iter().any(|x| x == "push"))),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.user.is_none())
            .flat_map(|r| &r.granted)
            .all(|a| a.actions.iter().all(|x| x == "pull")
                && (a.actions.is_empty() || a.name == "public")),
        "{requests:#?}"
    );
}

#[test]
fn multi_platform_index_is_pushed_with_every_platform() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let image = push_multi_platform(&reg, "multi");
    assert_eq!(reg.tags("multi"), ["latest"]);
    let index = manifest(&reg, "multi", "latest");
    assert_eq!(
        index.header("Docker-Content-Digest"),
        Some(image.descriptor().digest.as_str())
    );
    let index = json(&index);
    assert_eq!(index["mediaType"], MEDIA_INDEX);
    let children = index["manifests"].as_array().expect("manifests");
    let archs: Vec<&str> = children
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    for child in children {
        let digest = child["digest"].as_str().expect("digest");
        let m = manifest(&reg, "multi", digest);
        assert_eq!(m.status, 200, "child {digest}: {}", m.text());
        assert_eq!(json(&m)["mediaType"], MEDIA_MANIFEST);
    }
}

#[test]
fn zstd_and_uncompressed_layers_arrive_as_built() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let mixed = push_layered_mixed(&reg, "mixed");
    let m = json(&manifest(&reg, "mixed", "latest"));
    let kinds: Vec<&str> = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["mediaType"].as_str())
        .collect();
    // skopeo keeps gzip and zstd layers as they are, but always compresses a plain tar layer
    // for a registry (containers/image asks for compression there): the third one arrives
    // as gzip, with the same diff_id.
    assert_eq!(
        kinds,
        [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Gzip,
            Compression::Zstd
        ]
        .map(|c| c.media_type())
    );
    let built: Value = serde_json::from_slice(
        &mixed
            .open()
            .read_blob(&mixed.descriptor().digest)
            .expect("manifest"),
    )
    .expect("manifest JSON");
    for i in [0, 1, 3] {
        assert_eq!(
            m["layers"][i]["digest"], built["layers"][i]["digest"],
            "layer {i} pushed as it is"
        );
    }
    // skopeo recompressing a gzip layer to zstd on the way.
    let alpine = images::alpine("3.12");
    push_image(
        &reg,
        &alpine,
        "alpine-zstd",
        &PushOptions {
            compress: Some(DestCompression::Zstd),
            ..PushOptions::default()
        },
    );
    let m = json(&manifest(&reg, "alpine-zstd", "3.12"));
    assert_eq!(m["layers"][0]["mediaType"], Compression::Zstd.media_type());
    // Every layer blob can be fetched.
    for layer in m["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("digest");
        let blob = reg.get(&format!("/v2/alpine-zstd/blobs/{digest}"));
        assert_eq!(blob.status, 200);
        assert_eq!(images::sha256_digest(&blob.body), digest);
    }
}

#[test]
fn hostile_images_can_be_served_by_a_registry() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    for (name, image) in [
        ("hostile/traversal", hostile::path_traversal()),
        ("hostile/gzip-bomb", hostile::gzip_bomb(hostile::BOMB_SIZE)),
        ("hostile/truncated", hostile::truncated_gzip()),
        ("hostile/weird-names", hostile::weird_names()),
    ] {
        push_image(&reg, &image, name, &PushOptions::default());
        assert_eq!(reg.tags(name), ["latest"], "{name}");
    }
}

#[test]
fn restart_keeps_the_address_and_the_storage() {
    if !tools() {
        return;
    }
    let mut reg = Registry::start(Auth::htpasswd(USER, PASS));
    push_alpine(&reg, "alpine");
    let (addr, pid) = (reg.addr().to_string(), reg.pid());
    reg.restart();
    assert_eq!(reg.addr(), addr);
    assert_ne!(reg.pid(), pid);
    assert_eq!(reg.tags("alpine"), ["3.20"]);
    assert_eq!(
        reg.log().matches("listening on ").count(),
        2,
        "{}",
        reg.log()
    );
}

/// One POST received by the webhook sink: header lines and body.
type Delivery = (Vec<String>, Vec<u8>);

/// A webhook sink: answers 200 to every POST and hands each delivery over.
fn webhook_sink() -> (String, mpsc::Receiver<Delivery>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut headers = Vec::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push(line.trim().to_string());
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn notifications_announce_manifest_pushes() {
    if !tools() {
        return;
    }
    let (url, events) = webhook_sink();
    let mut hook = Notifications::new(&url).header("Authorization", "Bearer test-webhook-token");
    hook.manifest_pushes_only = true;
    let reg = Registry::start_with(Options {
        auth: Auth::None,
        notifications: Some(hook),
    });
    let image = push_alpine(&reg, "alpine");
    let (headers, body) = events
        .recv_timeout(Duration::from_secs(15))
        .expect("an event envelope");
    assert!(
        headers
            .iter()
            .any(|h| h == "Authorization: Bearer test-webhook-token"),
        "{headers:?}"
    );
    let envelope: Value = serde_json::from_slice(&body).expect("envelope JSON");
    let event = &envelope["events"][0];
    assert_eq!(event["action"], "push", "{envelope:#}");
    assert_eq!(event["target"]["repository"], "alpine");
    assert_eq!(event["target"]["tag"], "3.20");
    assert_eq!(event["target"]["mediaType"], MEDIA_MANIFEST);
    assert_eq!(
        event["target"]["digest"],
        image.descriptor().digest.as_str()
    );
}
