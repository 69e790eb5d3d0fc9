//! Connection limits over real sockets: request heads that never finish, keep-alive
//! connections that go quiet, and more idle connections than the relay has descriptors for.
//! After each, the relay still answers `/healthz`, and a websocket client connected before
//! (and older than every timeout) still gets every event accepted since.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{InProcess, RelayProcess, WAIT, WsClient, post_test_event, raw_http};

/// Reads until the relay closes the connection: true if it did within [`WAIT`].
async fn closed_by_relay(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn healthz(addr: std::net::SocketAddr) -> String {
    format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
}

/// Posts a follow and waits for it on `ws`: the relay accepted it and delivered it.
async fn follow_reaches(relay_base: &str, ws: &mut WsClient, who: &str) {
    let follow = json!({"type": "follow", "user": {"id": who, "unique_id": who, "nickname": who}});
    assert_eq!(post_test_event(relay_base, follow).await, 200);
    loop {
        let msg = ws.next_of_type("follow").await;
        if msg["user"]["unique_id"] == who {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_stalled_bodies_and_idle_keep_alive_are_closed_but_websockets_stay() {
    let relay = InProcess::start(&["--header-timeout", "0.5", "--idle-timeout", "0.5"]).await;
    let mut ws = WsClient::connect(&relay.ws_url("/ws?types=follow")).await;
    ws.next_of_type("hello").await;
    follow_reaches(&relay.url(""), &mut ws, "before").await;

    // 100 clients start a request head and never finish it.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(relay.addr).await.expect("connect");
        s.write_all(b"GET /api/state HTTP/1.1\r\nHost: ")
            .await
            .expect("write");
        slow.push(s);
    }
    // One trickles a header byte every 50 ms: activity must not extend the head's time.
    let addr = relay.addr;
    let trickle = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
            .await
            .expect("write");
        loop {
            if s.write_all(b"a").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // A client whose request body stops halfway.
    let mut stalled = TcpStream::connect(relay.addr).await.expect("connect");
    let req = format!(
        "POST /api/test HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\":",
        relay.addr
    );
    stalled.write_all(req.as_bytes()).await.expect("write");
    // A keep-alive client that got its answer and then says nothing.
    let mut idle = TcpStream::connect(relay.addr).await.expect("connect");
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", relay.addr);
    idle.write_all(req.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("{\"ok\":true}") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, idle.read(&mut buf))
            .await
            .expect("answer")
            .expect("read");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }

    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_by_relay(s).await,
            "slow client {i} is still held open"
        );
    }
    assert!(
        tokio::time::timeout(WAIT, trickle)
            .await
            .expect("the trickling client is still held open")
            .expect("trickle task"),
    );
    assert!(
        closed_by_relay(&mut idle).await,
        "idle keep-alive connection still open"
    );
    assert!(
        closed_by_relay(&mut stalled).await,
        "a stalled request body still holds its connection"
    );

    // Still serving; the websocket, older than every timeout, was not cut.
    let (status, _) = raw_http(relay.addr, &healthz(relay.addr)).await;
    assert_eq!(status, 200);
    follow_reaches(&relay.url(""), &mut ws, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_cap_never_lock_out_healthz() {
    // 128 descriptors, soft and hard, so the relay cannot raise the limit: its cap becomes
    // 128 - 64 = 64 connections. Timeouts are long, so only the cap can make room.
    let relay = RelayProcess::start_with_fd_limit(
        128,
        &[
            "--port",
            "0",
            "--header-timeout",
            "600",
            "--idle-timeout",
            "600",
            "demo",
            "--rate",
            "0",
        ],
    );
    let mut ws = WsClient::connect(&relay.ws_url("/ws?types=follow")).await;
    ws.next_of_type("hello").await;

    // Without the cap, these use up the relay's descriptors and accept() fails from then on.
    let mut idle = Vec::new();
    for i in 0..300 {
        let s = tokio::time::timeout(WAIT, TcpStream::connect(relay.addr))
            .await
            .unwrap_or_else(|_| panic!("connection {i} hangs: the relay no longer accepts"))
            .expect("connect");
        idle.push(s);
    }
    for round in 0..3 {
        let (status, _) = tokio::time::timeout(WAIT, raw_http(relay.addr, &healthz(relay.addr)))
            .await
            .unwrap_or_else(|_| panic!("healthz hangs (round {round})"));
        assert_eq!(status, 200);
    }
    follow_reaches(&relay.url(""), &mut ws, "past_the_cap").await;
    let log = relay.stderr.lock().unwrap().clone();
    assert!(
        log.contains("connection limit reached"),
        "the cap is logged; stderr:\n{log}"
    );
    assert!(
        log.contains("lowered to 64"),
        "the cap fits the descriptor limit; stderr:\n{log}"
    );
    // Hundreds of connections were closed or refused; the log says so in a line or two.
    assert!(
        log.matches("connection limit reached").count() <= 5,
        "the cap's log line is rate-limited; stderr:\n{log}"
    );
    drop(idle);
}
