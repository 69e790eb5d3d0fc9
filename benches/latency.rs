//! Latency and fan-out benchmark (a bench program, not a test: it prints figures).
//!
//! Part 1, in-process: 100 overlay websocket clients on one relay; push frames (gzip, one chat
//! message each, as TikTok sends them) enter the pipeline at 1,000 per second for 10 s; every
//! client measures the time from the frame entering the relay to its JSON arriving on its
//! socket. The clients share the machine with the relay, as OBS's pages do.
//!
//! Part 2, the real binary: `tikrelay demo --rate 1000`, measured for resident memory idle and
//! with 500 clients connected, and whether any client fell behind (was cut off).
//!
//! Run with `cargo bench --bench latency`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use prost::Message as _;
use tikrelay::cli::Cli;
use tikrelay::events::Source;
use tikrelay::pipeline::Input;
use tikrelay::proto;
use tikrelay::tiktok::frame;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 100;
const RATE: u64 = 1000;
const SECONDS: u64 = 10;

fn chat_frame(seq: i64, sent_ns: u128) -> Vec<u8> {
    let chat = proto::WebcastChatMessage {
        common: Some(proto::CommonMessageData {
            msg_id: seq,
            room_id: 1,
            ..Default::default()
        }),
        user: Some(proto::User {
            id: 42,
            nickname: "bench".into(),
            display_id: "bench".into(),
            ..Default::default()
        }),
        content: sent_ns.to_string(),
        ..Default::default()
    };
    let result = proto::ProtoMessageFetchResult {
        messages: vec![frame::base_message("WebcastChatMessage", seq, &chat)],
        ..Default::default()
    };
    frame::msg_frame(seq, seq, &result, true).encode_to_vec()
}

/// The send time carried in a comment event's `text`.
fn sent_time(json: &str) -> Option<u128> {
    let start = json.find("\"text\":\"")? + 8;
    let end = start + json[start..].find('"')?;
    json[start..end].parse().ok()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn in_process() {
    let cli = Cli::parse_from(["tikrelay", "--port", "0", "-q", "demo"]);
    let listener = tikrelay::app::bind(&cli.common).await.expect("bind");
    let running = tikrelay::app::start(listener, &cli.common, Source::Demo).expect("start");
    let addr = running.addr;
    let input = running.input.clone();
    let hub = running.hub.clone();
    tokio::spawn(running.serve(std::future::pending()));

    let epoch = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::with_capacity(
        CLIENTS * (RATE * SECONDS) as usize,
    )));
    let received = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?types=comment"))
            .await
            .expect("connect");
        let latencies = latencies.clone();
        let received = received.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity((RATE * SECONDS) as usize);
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                let now = epoch.elapsed().as_nanos();
                // Only the send time is read (not a full JSON parse): the clients share the
                // two cores with the relay, and the figure is about the relay.
                let Some(sent) = sent_time(text.as_str()) else {
                    continue;
                };
                mine.push(((now - sent) / 1000) as u64);
                received.fetch_add(1, Ordering::Relaxed);
                if mine.len() as u64 == RATE * SECONDS {
                    break;
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for seq in 1..=(RATE * SECONDS) as i64 {
        tick.tick().await;
        let bytes = chat_frame(seq, epoch.elapsed().as_nanos());
        input.send(Input::PushFrame(bytes)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for t in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, t).await;
    }
    let mut all = latencies.lock().unwrap().clone();
    all.sort_unstable();
    let expected = CLIENTS * (RATE * SECONDS) as usize;
    println!(
        "in-process: {CLIENTS} clients, {RATE} frames/s for {SECONDS} s: received {}/{} \
         ({} clients still connected)",
        all.len(),
        expected,
        hub.client_count()
    );
    println!(
        "  frame in -> JSON out latency: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        all.last().map_or(f64::NAN, |m| *m as f64 / 1000.0)
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn real_binary() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tikrelay"))
        .args(["demo", "--port", "0", "--rate", "1000", "-q"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tikrelay");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.trim_start_matches("listening on http://").to_string();
    std::thread::spawn(move || for _ in lines {});
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_kib(child.id());

    let clients = 500;
    let counts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..clients).map(|_| AtomicUsize::new(0)).collect());
    let closed = Arc::new(AtomicUsize::new(0));
    for i in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("connect");
        let counts = counts.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Text(_) => {
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    }
                    Message::Close(_) => {
                        closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    _ => {}
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let busy = rss_kib(child.id());
    let min = counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .min()
        .unwrap_or(0);
    let max = counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    println!("real binary (demo --rate 1000):");
    println!("  resident memory idle: {:.1} MB", idle as f64 / 1024.0);
    println!(
        "  resident memory with {clients} clients after 10 s: {:.1} MB; messages per client min {min} \
         max {max}; clients cut off: {}",
        busy as f64 / 1024.0,
        closed.load(Ordering::Relaxed)
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        in_process().await;
        real_binary().await;
    });
}
