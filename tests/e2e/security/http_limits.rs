//! Slow and greedy HTTP clients against a real `bulkhead serve`, on raw TCP sockets: the
//! attacker holds hundreds of connections that send part of a request head, stop in the
//! middle of a body, drip a body byte by byte, or send the webhook a body without its
//! secret. A normal request is still answered, the slow connections are closed by the
//! service, and the connection and in-flight caps hold (answering again once the slow
//! clients are cut off). The store is not involved: SQLite only.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use bulkhead_test_artifacts::service::{ServiceHarness, ServiceStore};

use super::query_limits::service;

/// The service's limits in this test: short, so that the test is.
const SERVER: &str = "header_timeout_seconds = 2\nbody_timeout_seconds = 2\n\
    request_timeout_seconds = 5\nmax_connections = 400\nmax_in_flight = 100\n";

/// How long a cut-off connection may stay open (generous: the limits above are 2–5 s).
const CUT_OFF: Duration = Duration::from_secs(20);

fn connect(svc: &ServiceHarness) -> TcpStream {
    let s = TcpStream::connect(svc.addr()).unwrap_or_else(|e| panic!("connect: {e}"));
    s.set_nodelay(true).expect("nodelay");
    s
}

fn send(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).expect("write");
    s.flush().expect("flush");
}

/// `n` connections, each sent the start of a request (`head(i)`) and then left as it is.
fn connections(svc: &ServiceHarness, n: usize, head: impl Fn(usize) -> String) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = connect(svc);
            send(&mut s, head(i).as_bytes());
            s
        })
        .collect()
}

/// Waits until the service ends the connection (EOF or reset), within `within` of `since`;
/// what it sent before. Panics if the connection is still open then.
fn ended(s: &mut TcpStream, since: Instant, within: Duration, what: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(since.elapsed());
        assert!(
            !left.is_zero(),
            "{what}: still open after {within:?} (got {:?})",
            String::from_utf8_lossy(&got)
        );
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // Closed with data unread: the kernel resets it.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{what}: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The status of a response at the start of `text` (`None`: no response).
fn status(text: &str) -> Option<u16> {
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn slow_clients_are_cut_off_and_others_still_answered() {
    // A query timeout below the request timeout (the configuration insists).
    let svc = service(
        ServiceStore::Sqlite,
        &["team-a"],
        SERVER,
        "[query]\ntimeout_seconds = 4\n",
    );
    let token = svc.create_token("team-a", "reader");
    let addr = svc.addr().to_string();
    let opened = Instant::now();

    // 300 connections that send part of a request head and stop.
    let mut heads: Vec<TcpStream> = connections(&svc, 300, |i| {
        format!("GET /v1/images HTTP/1.1\r\nHost: {addr}\r\nX-Slow-{i}: ")
    });
    // 40 authenticated queries whose body stops after a few bytes.
    let bodies: Vec<TcpStream> = connections(&svc, 40, |_| {
        format!(
            "POST /v1/query HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"query\": \""
        )
    });
    // 20 webhook deliveries without the secret, announcing a body they never send: the
    // secret is checked before the body is read, so they are answered 401 at once.
    let mut hooks: Vec<TcpStream> = connections(&svc, 20, |_| {
        format!(
            "POST /v1/webhooks/registry HTTP/1.1\r\nHost: {addr}\r\n\
                 Authorization: Bearer not-the-secret\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000000\r\n\r\n"
        )
    });
    // 10 bodies dripped a byte a second: never a pause long enough for the body timeout,
    // so the whole-request timeout must end them.
    let drips: Vec<_> = (0..10)
        .map(|_| {
            let mut s = connect(&svc);
            send(
                &mut s,
                format!(
                    "POST /v1/query HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                     Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                )
                .as_bytes(),
            );
            let mut writer = s.try_clone().expect("clone");
            thread::spawn(move || {
                let start = Instant::now();
                while start.elapsed() < CUT_OFF {
                    if writer.write_all(b" ").is_err() {
                        break;
                    }
                    thread::sleep(Duration::from_secs(1));
                }
            });
            s
        })
        .collect();

    // A normal request, while all of them are open, is answered, and promptly.
    let asked = Instant::now();
    let images = svc.get("/v1/images", Some(&token));
    let took = asked.elapsed();
    assert_eq!(images.status, 200, "{}", images.text());
    println!(
        "with {} slow connections open, GET /v1/images took {took:?}",
        heads.len() + bodies.len() + hooks.len() + drips.len()
    );
    assert!(took < Duration::from_secs(5), "{took:?}");

    for (i, s) in hooks.iter_mut().enumerate() {
        let text = ended(s, opened, CUT_OFF, &format!("webhook {i}"));
        assert_eq!(status(&text), Some(401), "webhook {i}: {text}");
    }
    // Partial heads are closed without an answer; stalled and dripped bodies end with
    // an error answer (400: the body timed out; 408: the request did) or none.
    for (i, s) in heads.iter_mut().enumerate() {
        let text = ended(s, opened, CUT_OFF, &format!("partial head {i}"));
        assert!(
            status(&text).is_none_or(|c| c == 408),
            "partial head {i}: {text}"
        );
    }
    for (i, mut s) in bodies.into_iter().chain(drips).enumerate() {
        let text = ended(&mut s, opened, CUT_OFF, &format!("slow body {i}"));
        assert!(
            status(&text).is_none_or(|c| matches!(c, 400 | 408)),
            "slow body {i}: {text}"
        );
    }
    println!(
        "every slow connection was closed by the service within {:?}",
        opened.elapsed()
    );

    // The in-flight cap: 100 requests held in their bodies fill it; the next request is
    // refused at once with Retry-After (not queued behind them) …
    let held: Vec<TcpStream> = connections(&svc, 100, |_| {
        format!(
            "POST /v1/query HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        )
    });
    thread::sleep(Duration::from_millis(500));
    let refused = svc.get("/v1/images", Some(&token));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert!(
        refused.text().contains("max_in_flight"),
        "{}",
        refused.text()
    );
    // … and once the body timeout has ended them, requests are answered again.
    let held_since = Instant::now();
    for (i, mut s) in held.into_iter().enumerate() {
        ended(&mut s, held_since, CUT_OFF, &format!("held body {i}"));
    }
    assert_eq!(svc.get("/v1/images", Some(&token)).status, 200);

    // The connection cap: 400 silent connections take every place; another connection
    // is not served while they are open (it waits to be accepted) …
    let idle_since = Instant::now();
    let mut idle: Vec<TcpStream> = (0..400).map(|_| connect(&svc)).collect();
    thread::sleep(Duration::from_millis(300));
    let mut waiting = connect(&svc);
    send(
        &mut waiting,
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut first = [0u8; 1];
    let early = waiting.read(&mut first);
    // On a loaded machine opening the 400 can take longer than the header timeout, and
    // then the first of them are closed (places free up) before this read: being served is
    // a failure only if it came before any silent connection could have been closed.
    let answered_after = idle_since.elapsed();
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
            || answered_after >= Duration::from_millis(1900),
        "a connection past max_connections was served after {answered_after:?}, while the \
         others were open (header timeout 2 s): {early:?}"
    );
    // … until the header timeout closes the silent ones; then it is answered.
    let read_early = match &early {
        Ok(n) => String::from_utf8_lossy(&first[..*n]).into_owned(),
        Err(_) => String::new(),
    };
    let text = read_early + &ended(&mut waiting, idle_since, CUT_OFF, "waiting connection");
    assert_eq!(status(&text), Some(200), "{text}");
    for (i, s) in idle.iter_mut().enumerate() {
        ended(s, idle_since, CUT_OFF, &format!("silent connection {i}"));
    }
}
