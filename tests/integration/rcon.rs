//! The RCON client and worker against the test RCON server over real TCP: login with the right
//! and a wrong password, commands in order, long multi-packet answers, a restarting server,
//! malformed packets, a full queue.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::mpsc::UnboundedReceiver;

use tikrelay::triggers::rcon::*;

use crate::support::rcon_server::{ServerOptions, TestServer, answer_to};

/// Long enough never to fire on a healthy loopback server; the tests never wait for it.
const TIMEOUT: Duration = Duration::from_secs(10);

pub fn test_config(
    addr: String,
    password: &str,
) -> (RconWorkerConfig, UnboundedReceiver<CommandOutcome>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = RconWorkerConfig {
        queue_capacity: 1000,
        min_interval: Duration::from_millis(1),
        timeout: TIMEOUT,
        max_attempts: 5,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        outcomes: Some(tx),
        ..RconWorkerConfig::new(addr, password)
    };
    (config, rx)
}

async fn collect(rx: &mut UnboundedReceiver<CommandOutcome>, n: usize) -> Vec<CommandOutcome> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        out.push(
            next.expect("worker reported nothing for 30 s")
                .expect("worker gone"),
        );
    }
    out
}

#[tokio::test]
async fn login_and_command() {
    let server = TestServer::start("secret", ServerOptions::default()).await;
    let mut client = RconClient::connect(&server.addr(), "secret", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(client.command("list").await.unwrap(), "ran list");
    assert_eq!(
        client.command("time set day").await.unwrap(),
        "ran time set day"
    );
    assert_eq!(server.log(), ["list", "time set day"]);
}

#[tokio::test]
async fn wrong_password_is_auth_failed() {
    let server = TestServer::start("secret", ServerOptions::default()).await;
    let err = RconClient::connect(&server.addr(), "guess", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, RconError::AuthFailed), "{err:?}");
    assert!(err.to_string().contains("rcon.password"));
}

#[tokio::test]
async fn refused_connect_names_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = RconClient::connect(&addr, "secret", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, RconError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr));
    assert!(err.to_string().contains("enable-rcon=true"));
}

#[tokio::test]
async fn multi_packet_answers_come_back_whole() {
    let server = TestServer::start("secret", ServerOptions::default()).await;
    let mut client = RconClient::connect(&server.addr(), "secret", TIMEOUT)
        .await
        .unwrap();
    for n in [10_000, 4096, 4097, 8192, 0, 1] {
        let answer = client.command(&format!("long {n}")).await.unwrap();
        assert_eq!(answer.len(), n);
        assert_eq!(answer, answer_to(&format!("long {n}")));
    }
    // Still in step after the split answers.
    assert_eq!(client.command("list").await.unwrap(), "ran list");
}

#[tokio::test]
async fn too_long_command_is_refused_before_sending() {
    let server = TestServer::start("secret", ServerOptions::default()).await;
    let mut client = RconClient::connect(&server.addr(), "secret", TIMEOUT)
        .await
        .unwrap();
    let err = client
        .command(&"x".repeat(MAX_COMMAND_LEN + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RconError::CommandTooLong {
                len: 1447,
                max: 1446
            }
        ),
        "{err:?}"
    );
    let longest = "y".repeat(MAX_COMMAND_LEN);
    assert_eq!(
        client.command(&longest).await.unwrap(),
        format!("ran {longest}")
    );
    assert_eq!(server.log(), [longest]);
}

#[tokio::test]
async fn malformed_packets_are_protocol_errors() {
    let ten_mb = 10 * 1024 * 1024_i32;
    let mut missing_nul = Vec::new();
    missing_nul.extend_from_slice(&12_i32.to_le_bytes());
    missing_nul.extend_from_slice(&2_i32.to_le_bytes());
    missing_nul.extend_from_slice(&0_i32.to_le_bytes());
    missing_nul.extend_from_slice(b"okay");
    for raw in [
        (-5_i32).to_le_bytes().to_vec(),
        ten_mb.to_le_bytes().to_vec(),
        4_i32.to_le_bytes().to_vec(),
        missing_nul,
    ] {
        let opts = ServerOptions {
            raw_reply: Some(raw.clone()),
            ..Default::default()
        };
        let server = TestServer::start("secret", opts).await;
        let mut client = RconClient::connect(&server.addr(), "secret", TIMEOUT)
            .await
            .unwrap();
        let err = client.command("list").await.unwrap_err();
        assert!(matches!(err, RconError::Protocol(_)), "{raw:?}: {err:?}");
        // The connection is out of step now and says so instead of misreading.
        let again = client.command("list").await.unwrap_err();
        assert!(matches!(again, RconError::Io(_)), "{again:?}");
    }
}

#[tokio::test]
async fn silent_server_times_out_on_paused_time() {
    let opts = ServerOptions {
        silent: true,
        ..Default::default()
    };
    let server = TestServer::start("secret", opts).await;
    let mut client = RconClient::connect(&server.addr(), "secret", Duration::from_secs(30))
        .await
        .unwrap();
    // Paused only now, so the real socket handshake above cannot race the auto-advancing clock.
    tokio::time::pause();
    let err = client.command("list").await.unwrap_err();
    assert!(matches!(err, RconError::Timeout), "{err:?}");
}

#[tokio::test]
async fn worker_runs_commands_in_order_exactly_once() {
    let server = TestServer::start("secret", ServerOptions::default()).await;
    let (config, mut outcomes) = test_config(server.addr(), "secret");
    let handle = spawn_worker(config);
    let commands: Vec<String> = (0..50).map(|i| format!("say {i}")).collect();
    for c in &commands {
        handle.send(c.clone()).unwrap();
    }
    let got = collect(&mut outcomes, commands.len()).await;
    assert_eq!(server.log(), commands);
    for (o, c) in got.iter().zip(&commands) {
        assert_eq!(o.command, *c);
        assert_eq!(o.result, Ok(format!("ran {c}")));
        assert_eq!(o.attempts, 1);
    }
    assert_eq!(server.state.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn worker_survives_server_restart_without_loss_or_doubles() {
    let opts = ServerOptions {
        restart_after: Some(3),
        ..Default::default()
    };
    let server = TestServer::start("secret", opts).await;
    let (config, mut outcomes) = test_config(server.addr(), "secret");
    let handle = spawn_worker(config);
    let commands: Vec<String> = (0..10).map(|i| format!("give @a diamond {i}")).collect();
    for c in &commands {
        handle.send(c.clone()).unwrap();
    }
    let got = collect(&mut outcomes, commands.len()).await;
    assert_eq!(server.log(), commands);
    assert!(got.iter().all(|o| o.result.is_ok()), "{got:?}");
    assert_eq!(
        got.iter().map(|o| o.command.clone()).collect::<Vec<_>>(),
        commands
    );
    // The 4th went out on the dead connection, failed before the server read it, and was
    // retried once on the new one.
    let attempts: Vec<u32> = got.iter().map(|o| o.attempts).collect();
    assert_eq!(attempts, [1, 1, 1, 2, 1, 1, 1, 1, 1, 1]);
    assert!(server.state.connections.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn worker_drops_a_command_after_max_attempts_and_moves_on() {
    let server = TestServer::start("secret", ServerOptions::default()).await;
    let (mut config, mut outcomes) = test_config(server.addr(), "secret");
    config.max_attempts = 3;
    let handle = spawn_worker(config);
    for c in ["before", "drop", "after"] {
        handle.send(c.to_string()).unwrap();
    }
    let got = collect(&mut outcomes, 3).await;
    assert_eq!(got[0].result, Ok("ran before".to_string()));
    assert_eq!(got[1].command, "drop");
    assert!(got[1].result.is_err(), "{:?}", got[1]);
    assert_eq!(got[1].attempts, 3);
    assert_eq!(got[2].result, Ok("ran after".to_string()));
    assert_eq!(server.log(), ["before", "drop", "drop", "drop", "after"]);
}

#[tokio::test]
async fn worker_keeps_retrying_a_refused_login_until_the_password_is_fixed() {
    let server = TestServer::start("old", ServerOptions::default()).await;
    let (config, mut outcomes) = test_config(server.addr(), "secret");
    let handle = spawn_worker(config);
    handle.send("list".to_string()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while server.state.auth_failures.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("worker stopped retrying the login");
    assert!(server.log().is_empty());
    *server.state.password.lock().unwrap() = "secret".to_string();
    let got = collect(&mut outcomes, 1).await;
    assert_eq!(got[0].result, Ok("ran list".to_string()));
    assert_eq!(got[0].attempts, 1);
}

#[tokio::test]
async fn full_queue_is_reported_not_blocking() {
    let server = TestServer::start("secret", ServerOptions::default()).await;
    let (mut config, mut outcomes) = test_config(server.addr(), "secret");
    config.queue_capacity = 2;
    let handle = spawn_worker(config);
    // No await in between: on this single-threaded runtime the worker has not run yet.
    handle.send("a".to_string()).unwrap();
    handle.send("b".to_string()).unwrap();
    assert_eq!(handle.queued(), 2);
    let err = handle.send("c".to_string()).unwrap_err();
    assert_eq!(err.command, "c");
    assert!(!err.worker_stopped);
    assert_eq!(handle.rejected(), 1);
    let got = collect(&mut outcomes, 2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(server.log(), ["a", "b"]);
}
