//! The live source: one task that keeps a TikTok LIVE stream flowing into the pipeline for
//! hours, through network drops.
//!
//! Per connection: resolve the room and check it is live, sign (a fresh sign for every
//! connection, because signed URLs expire within a minute), open the socket, enter the room,
//! announce `connected`, relay the sign result's messages (minus the backlog, see
//! [`super::backlog`]) and then every pushed frame. When the socket drops or stalls:
//! `disconnected {will_reconnect: true}`, a jittered exponential backoff (1 s doubling to 60 s,
//! reset after a connection that stayed up), and the whole sequence again. Messages relayed
//! before the drop are not relayed twice: the normaliser drops repeated msg_ids.
//!
//! Errors before the first connection end the source with the error (the app exits with code 3
//! and the one-line message) unless `--wait-live` asks for patience; afterwards they are logged
//! and retried with the backoff. Errors only the streamer can fix (an unknown handle, a sign
//! server that wants an API key) always end the source. A sign server 429 waits for its
//! `retry-after`. When the
//! LIVE ends, the source emits `live_ended` and `disconnected {will_reconnect: false}` and
//! returns; with `--wait-live` it checks (no more often than every 30 s) until the next LIVE and
//! connects again.

use std::time::Duration;

use tokio::time::Instant;

use super::backlog::{self, Connection};
use super::room::{self, RoomInfo};
use super::ws::{self, Outputs, Session, SessionEnd};
use super::{LiveConfig, LiveError, Timings, sign};
use crate::events::{Event, EventKind, Source, local_id};
use crate::pipeline::Input;
use crate::recorder::RecordKind;
use crate::sources::rng::Rng;

/// Jittered exponential backoff: attempt n waits a random time in `[d/2, d]` where
/// `d = min · 2ⁿ`, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            rng: Rng::new(seed),
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        let full = self.min.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = full / 2;
        let span = (full - half).as_micros() as u64;
        half + Duration::from_micros(self.rng.below(span + 1))
    }

    /// Back to the shortest delay, after a connection that proved stable.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The HTTP client for TikTok and the sign server.
pub fn http_client(timings: &Timings) -> Result<reqwest::Client, LiveError> {
    reqwest::Client::builder()
        .timeout(timings.request_timeout)
        .connect_timeout(timings.request_timeout)
        .cookie_store(true)
        .build()
        .map_err(|e| LiveError::Socket(format!("cannot set up HTTP: {e}")))
}

fn lifecycle(kind: EventKind, room_id: Option<&str>) -> Input {
    let mut event = Event::new(kind.clone(), local_id(kind.type_name()), Source::Tiktok);
    event.room_id = room_id.map(str::to_string);
    Input::Event(Box::new(event))
}

fn disconnected(reason: &str, will_reconnect: bool, room_id: Option<&str>) -> Input {
    lifecycle(
        EventKind::Disconnected {
            reason: reason.to_string(),
            will_reconnect,
        },
        room_id,
    )
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Waits out a failed room lookup or sign step, or hands back an error the retry cannot fix:
/// one only the streamer can fix, or any error before the first connection (unless waiting for
/// the LIVE), so a wrong name fails at once with exit code 3.
async fn retry_later(
    e: LiveError,
    backoff: &mut Backoff,
    keep_trying: bool,
    out: &Outputs,
) -> Result<(), LiveError> {
    if e.needs_user() || !keep_trying {
        return Err(e);
    }
    let delay = backoff.next_delay();
    tracing::warn!("{e}; trying again in {}", secs(delay));
    out.step(&format!("{e}; trying again in {}", secs(delay)));
    tokio::time::sleep(delay).await;
    Ok(())
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// Runs the live source until the LIVE ends (`Ok`), the pipeline goes away (`Ok`), or an error
/// the streamer must fix (`Err`). Cancel it by dropping the future.
pub async fn run(config: LiveConfig, out: Outputs) -> Result<(), LiveError> {
    let t = config.timings.clone();
    let http = super::client::http_client(&t)?;
    let who = config.target.to_string();
    let mut backoff = Backoff::new(t.backoff_min, t.backoff_max, seed());
    let mut connected_once = false;
    let mut waiting_announced = false;
    let mut last_room: Option<String> = None;
    let mut down_since: Option<Instant> = None;
    loop {
        // 1. The room, and whether it is live.
        out.step("looking up the room");
        let info: RoomInfo = match room::resolve(&http, &config.endpoints, &config.target).await {
            Ok(info) if info.live => info,
            Ok(_) if connected_once && !config.wait_live => {
                // The socket dropped and the LIVE is over: the end message was lost.
                let room = last_room.as_deref();
                let _ = out.send(lifecycle(EventKind::LiveEnded, room)).await;
                let reason = format!("{who} is no longer live");
                let _ = out.send(disconnected(&reason, false, room)).await;
                tracing::info!("{reason}; the LIVE has ended");
                return Ok(());
            }
            Ok(_) if !config.wait_live => return Err(LiveError::NotLive(who)),
            Ok(_) => {
                if !waiting_announced {
                    let reason = format!("{who} is not live; waiting for the LIVE to start");
                    tracing::info!("{reason} (checking every {})", secs(t.wait_live_poll));
                    let _ = out
                        .send(disconnected(&reason, true, last_room.as_deref()))
                        .await;
                    waiting_announced = true;
                }
                tokio::time::sleep(t.wait_live_poll).await;
                continue;
            }
            Err(e) => {
                retry_later(e, &mut backoff, connected_once || config.wait_live, &out).await?;
                continue;
            }
        };
        waiting_announced = false;
        if last_room.as_deref() != Some(info.room_id.as_str()) {
            if !out.send(Input::Room(Some(info.room_id.clone()))).await {
                return Ok(());
            }
            last_room = Some(info.room_id.clone());
        }

        // 2. The sign step, then 3. the socket.
        let attempt = connect_once(&http, &config, &info, &out).await;
        let (session, signed_result, room_id) = match attempt {
            Ok(parts) => parts,
            Err(LiveError::RateLimited {
                retry_after,
                message,
            }) => {
                let wait = retry_after.min(t.max_retry_after);
                let e = LiveError::RateLimited {
                    retry_after: wait,
                    message,
                };
                tracing::warn!("{e}");
                out.step(&e.to_string());
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(e) => {
                retry_later(e, &mut backoff, connected_once || config.wait_live, &out).await?;
                continue;
            }
        };
        let (signed_raw, mut initial) = signed_result;
        out.record(RecordKind::FetchResult, &signed_raw);
        let connection = match down_since {
            Some(since) if connected_once => Connection::Reconnect {
                gap: since.elapsed(),
            },
            _ => Connection::First,
        };
        connected_once = true;
        let started = Instant::now();
        let connected = EventKind::Connected {
            unique_id: info.unique_id.clone(),
        };
        if !out.send(lifecycle(connected, Some(&room_id))).await {
            return Ok(());
        }
        tracing::info!(
            "connected to {who} (room {room_id}); heartbeat every {}",
            secs(session.heartbeat)
        );
        let dropped = backlog::drop_backlog(&mut initial, connection);
        if dropped > 0 {
            tracing::debug!("{dropped} backlog messages of the sign result not relayed");
        }
        let ended_at_once = ws::ends_live(&initial);
        if !initial.messages.is_empty() && !out.send(Input::fetch_result(initial)).await {
            return Ok(());
        }
        let end = if ended_at_once {
            SessionEnd::LiveEnded
        } else {
            session.run(&out).await
        };
        down_since = Some(match end {
            // The last frame arrived a stall timeout ago.
            SessionEnd::Stalled => Instant::now() - t.stall_timeout.min(started.elapsed()),
            _ => Instant::now(),
        });
        if started.elapsed() >= t.stable_after {
            backoff.reset();
        }
        match end {
            SessionEnd::PipelineGone => return Ok(()),
            SessionEnd::LiveEnded => {
                let reason = "the LIVE ended";
                let _ = out
                    .send(disconnected(reason, config.wait_live, Some(&room_id)))
                    .await;
                if !config.wait_live {
                    tracing::info!("{who}: the LIVE ended");
                    return Ok(());
                }
                tracing::info!(
                    "{who}: the LIVE ended; waiting for the next one (checking every {})",
                    secs(t.wait_live_poll)
                );
                waiting_announced = true;
                // The next LIVE is a new session: the backlog rule of a first connection applies.
                connected_once = true;
                down_since = None;
                backoff.reset();
                tokio::time::sleep(t.wait_live_poll).await;
            }
            SessionEnd::Closed(_) | SessionEnd::Stalled => {
                let reason = match end {
                    SessionEnd::Closed(r) => r,
                    _ => format!("nothing received for {}", secs(t.stall_timeout)),
                };
                let delay = backoff.next_delay();
                tracing::warn!(
                    "connection lost ({reason}); reconnecting in {}",
                    secs(delay)
                );
                let _ = out.send(disconnected(&reason, true, Some(&room_id))).await;
                tokio::time::sleep(delay).await;
            }
        }
    }
}

type SignedParts = (
    Session,
    (Vec<u8>, crate::proto::ProtoMessageFetchResult),
    String,
);

/// Sign, open the socket and enter the room.
async fn connect_once(
    http: &reqwest::Client,
    config: &LiveConfig,
    info: &RoomInfo,
    out: &Outputs,
) -> Result<SignedParts, LiveError> {
    let t = &config.timings;
    out.step("signing");
    let signed = sign::fetch(
        http,
        &config.endpoints.sign,
        config.sign_api_key.as_deref(),
        &info.room_id,
        &info.unique_id,
    )
    .await?;
    let room_id = signed
        .room_id
        .clone()
        .filter(|r| r.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| info.room_id.clone());
    let url = ws::socket_url(
        &signed.result.push_server,
        &signed.result.route_params,
        &room_id,
        t.default_heartbeat,
    )?;
    out.step("connecting");
    let (socket, heartbeat) = ws::connect(
        &url,
        &signed.cookie_header(),
        t.default_heartbeat,
        t.request_timeout,
    )
    .await?;
    let mut session = Session {
        socket,
        room_id: room_id.parse().unwrap_or(0),
        heartbeat,
        stall_timeout: t.stall_timeout,
    };
    session.enter().await?;
    Ok((session, (signed.raw, signed.result), room_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let min = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let mut b = Backoff::new(min, max, 42);
        let mut fulls = Vec::new();
        for n in 0..10 {
            let d = b.next_delay();
            let full = (min * 2u32.pow(n)).min(max);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {n}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
            fulls.push(full);
        }
        assert_eq!(*fulls.last().unwrap(), max);
        b.reset();
        assert!(b.next_delay() <= min);
        // Two clients with different seeds do not retry in lockstep.
        let mut a = Backoff::new(min, max, 1);
        let mut c = Backoff::new(min, max, 2);
        let same = (0..8).filter(|_| a.next_delay() == c.next_delay()).count();
        assert!(same < 8);
    }
}
