//! Issue 10's image cache, end to end: `/media/…` fetches an image once from a real HTTP
//! image host on loopback and serves it from disk while that host answers 403 (and to a later
//! replay); hosts outside the allow-list are refused without a request; the folder stays under
//! its cap, evicting the least recently used image; the chat and alerts pages (headless
//! Chromium) load avatars and gift images through the relay, and the chat marks moderators and
//! top gifters as text.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::roles_wire::config_file;
use crate::support::{InProcess, WAIT, WsClient, http, post_test_event};

/// A real HTTP image host on loopback: `/img/<name>` answers the image registered under that
/// name, or 403 for everything while `forbid` is set. Counts the requests it gets.
struct ImageHost {
    addr: std::net::SocketAddr,
    images: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<AtomicUsize>,
    forbid: Arc<AtomicBool>,
}

impl ImageHost {
    async fn start() -> ImageHost {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = ImageHost {
            addr: listener.local_addr().unwrap(),
            images: Default::default(),
            hits: Default::default(),
            forbid: Default::default(),
        };
        let (images, hits, forbid) = (host.images.clone(), host.hits.clone(), host.forbid.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (images, hits, forbid) = (images.clone(), hits.clone(), forbid.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let text = String::from_utf8_lossy(&req);
                    let path = text.split(' ').nth(1).unwrap_or("");
                    let name = path
                        .strip_prefix("/img/")
                        .map(|p| p.split('?').next().unwrap_or(""))
                        .unwrap_or("");
                    let body = images.lock().unwrap().get(name).cloned();
                    let (status, body) = match body {
                        _ if forbid.load(Ordering::SeqCst) => {
                            ("403 Forbidden", b"expired".to_vec())
                        }
                        Some(b) => ("200 OK", b),
                        None => ("404 Not Found", b"no".to_vec()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                });
            }
        });
        host
    }

    /// Registers a PNG of `size` bytes under `name`; returns its signed-looking URL.
    fn add(&self, name: &str, size: usize, sig: u32) -> String {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.resize(size.max(png.len()), name.as_bytes()[0]);
        self.images.lock().unwrap().insert(name.into(), png);
        self.url(name, sig)
    }

    fn url(&self, name: &str, sig: u32) -> String {
        format!(
            "http://{}/img/{name}?x-expires=1&x-signature=s{sig}",
            self.addr
        )
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn get_media(relay: &InProcess, path: &str) -> (u16, Vec<u8>, Value) {
    let res = http().get(relay.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    let json_error = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").contains("json"));
    let body = res.bytes().await.unwrap().to_vec();
    let error = if json_error {
        serde_json::from_slice(&body).unwrap()
    } else {
        Value::Null
    };
    (status, body, error)
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

async fn media_relay(cap_mb: &str) -> (InProcess, tempfile::NamedTempFile) {
    let config = config_file(&format!(
        "[media]\ncache_mb = {cap_mb}\nallow_hosts = [\"127.0.0.1\"]\n"
    ));
    let relay = InProcess::start(&["--config", config.path().to_str().unwrap()]).await;
    (relay, config)
}

#[tokio::test]
async fn an_image_is_fetched_once_then_served_from_disk_while_the_host_answers_403() {
    let host = ImageHost::start().await;
    let (relay, _config) = media_relay("10").await;
    let avatar = host.add("avatar.png", 3000, 1);
    let rose = host.add("rose.png", 2000, 1);
    let mut ws = WsClient::connect(&relay.ws_url("/ws?types=gift")).await;
    assert_eq!(ws.next_json().await["type"], "hello");
    let status = post_test_event(
        &relay.url(""),
        json!({"type": "gift", "count": 1,
               "user": {"id": "1", "unique_id": "ana", "nickname": "Ana", "avatar_url": avatar},
               "gift": {"id": 5655, "name": "Rose", "diamonds": 1, "image_url": rose, "streakable": false}}),
    )
    .await;
    assert_eq!(status, 200);
    let event = ws.next_of_type("gift").await;
    // The originals stay; the relay URLs sit next to them.
    assert_eq!(event["user"]["avatar_url"], avatar.as_str());
    assert_eq!(event["gift"]["image_url"], rose.as_str());
    let avatar_path = event["user"]["avatar"].as_str().unwrap().to_string();
    let rose_path = event["gift"]["image"].as_str().unwrap().to_string();
    assert!(avatar_path.starts_with("/media/"), "{avatar_path}");

    let (status, body, _) = get_media(&relay, &avatar_path).await;
    assert_eq!(status, 200);
    assert_eq!(body, host.images.lock().unwrap()["avatar.png"]);
    assert_eq!(get_media(&relay, &rose_path).await.0, 200);
    assert_eq!(host.hits(), 2);

    // TikTok's link expires: the host now refuses everything.
    host.forbid.store(true, Ordering::SeqCst);
    let (status, again, _) = get_media(&relay, &avatar_path).await;
    assert_eq!((status, again == body), (200, true));
    // The same image under a fresh signature, and the bare key, come from disk too.
    let fresh = tikrelay::media::relay_url(&host.url("avatar.png", 2)).unwrap();
    assert_eq!(fresh.split('?').next(), avatar_path.split('?').next());
    assert_eq!(get_media(&relay, &fresh).await.0, 200);
    let bare = avatar_path.split('?').next().unwrap();
    assert_eq!(get_media(&relay, bare).await.0, 200);
    assert_eq!(
        host.hits(),
        2,
        "served from disk, the host was not asked again"
    );

    // An image never fetched while the host refuses: the host's answer, named.
    let (status, _, error) = get_media(
        &relay,
        &tikrelay::media::relay_url(&host.url("new.png", 1)).unwrap(),
    )
    .await;
    assert_eq!(status, 502);
    assert!(error["error"].as_str().unwrap().contains("403"), "{error}");
    // A bare key that was never cached, and a src that does not belong to the key.
    let unknown = format!("/media/{}", "ab".repeat(16));
    assert_eq!(get_media(&relay, &unknown).await.0, 404);
    let (path, _) = avatar_path.split_once('?').unwrap();
    let other = tikrelay::media::relay_url(&host.url("rose.png", 1)).unwrap();
    let (_, other_query) = other.split_once('?').unwrap();
    let _ = get_media(&relay, &format!("{path}?{other_query}")).await; // cached: served
    let uncached_key = format!("/media/{}?{other_query}", "cd".repeat(16));
    assert_eq!(get_media(&relay, &uncached_key).await.0, 400);
    assert_eq!(
        get_media(&relay, "/media/..%2f..%2fetc%2fpasswd").await.0,
        400
    );
}

#[tokio::test]
async fn hosts_outside_the_allow_list_are_refused_without_a_request() {
    let host = ImageHost::start().await;
    let (relay, _config) = media_relay("10").await;
    host.add("a.png", 1000, 1);
    // The same server, named `localhost`: not on the list (only 127.0.0.1 is).
    let by_name = format!("http://localhost:{}/img/a.png", host.addr.port());
    for url in [
        by_name.as_str(),
        "https://example.com/a.png",
        "http://p16-sign-va.tiktokcdn.com/a.png",
        "https://tiktokcdn.com.attacker.example/a.png",
    ] {
        let path = tikrelay::media::relay_url(url).unwrap();
        let (status, _, error) = get_media(&relay, &path).await;
        assert_eq!(status, 403, "{url}");
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .contains("not an allowed image host"),
            "{error}"
        );
    }
    assert_eq!(host.hits(), 0, "no request left the relay");
    // What is not an image is not served, even from an allowed host.
    host.images
        .lock()
        .unwrap()
        .insert("page.png".into(), b"<svg onload=alert(1)>".to_vec());
    let path = tikrelay::media::relay_url(&host.url("page.png", 1)).unwrap();
    assert_eq!(get_media(&relay, &path).await.0, 502);
}

#[tokio::test]
async fn the_cache_stays_under_its_cap_and_evicts_the_least_recently_used() {
    let host = ImageHost::start().await;
    // 0.5 MiB cap, 200 KiB images: two fit, a third evicts one.
    let (relay, _config) = media_relay("0.5").await;
    let dir = relay.data_dir.as_ref().unwrap().path().join("media");
    let cap = 512 * 1024;
    let size = 200 * 1024;
    let names = ["c0.png", "c1.png", "c2.png", "c3.png", "c4.png"];
    let paths: Vec<String> = names
        .iter()
        .map(|n| tikrelay::media::relay_url(&host.add(n, size, 1)).unwrap())
        .collect();
    let key = |i: usize| paths[i][7..39].to_string();

    assert_eq!(get_media(&relay, &paths[0]).await.0, 200);
    assert_eq!(get_media(&relay, &paths[1]).await.0, 200);
    // c0 used again: now c1 is the least recently used.
    assert_eq!(get_media(&relay, &paths[0]).await.0, 200);
    assert_eq!(host.hits(), 2);
    assert_eq!(get_media(&relay, &paths[2]).await.0, 200);
    assert!(dir.join(key(0)).exists(), "recently used c0 kept");
    assert!(!dir.join(key(1)).exists(), "least recently used c1 evicted");
    assert!(dir.join(key(2)).exists());
    for p in &paths[3..] {
        assert_eq!(get_media(&relay, p).await.0, 200);
        assert!(
            folder_bytes(&dir) <= cap,
            "{} over the cap",
            folder_bytes(&dir)
        );
    }
    assert!(dir.join(key(4)).exists());
    assert_eq!(folder_bytes(&dir), 2 * size as u64);
    // An evicted image is fetched again from the host when asked for.
    let before = host.hits();
    assert_eq!(get_media(&relay, &paths[1]).await.0, 200);
    assert_eq!(host.hits(), before + 1);
}

/// A real 2x2 RGB PNG (Chromium must decode it to show it).
fn png_2x2() -> Vec<u8> {
    use std::io::Write as _;
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
    let rows = [0u8, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 0];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&rows).unwrap();
    chunk(&mut png, b"IDAT", &z.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_marks_moderators_and_top_gifters_and_loads_avatars_from_the_relay() {
    use crate::support::browser::{Browser, require_browser};
    let Some(chromium) = require_browser() else {
        return;
    };
    let host = ImageHost::start().await;
    host.images
        .lock()
        .unwrap()
        .insert("mod.png".into(), png_2x2());
    let (relay, _config) = media_relay("10").await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.new_page(&relay.url("/overlays/default/chat")).await;
    page.wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
        .await;
    let nick = "<img src=x onerror=\"document.title='pwned'\">";
    let title = page.title().await;
    for ev in [
        json!({"type": "comment", "text": "I moderate",
               "user": {"id": "1", "unique_id": "m", "nickname": nick, "avatar_url": host.url("mod.png", 1),
                        "is_moderator": true, "top_gifter_rank": 2}}),
        json!({"type": "comment", "text": "just watching",
               "user": {"id": "2", "unique_id": "p", "nickname": "Pia", "avatar_url": null,
                        "is_moderator": false}}),
    ] {
        assert_eq!(post_test_event(&relay.url(""), ev).await, 200);
    }
    page.wait_for("document.querySelectorAll('.chat-msg').length === 2", WAIT)
        .await;
    let marks = page
        .eval(
            "[...document.querySelectorAll('.chat-msg')].map(m => [m.className, \
             [...m.querySelectorAll('.role')].map(r => r.textContent).join(',')])",
        )
        .await;
    assert_eq!(
        marks,
        json!([
            ["chat-msg comment is-moderator is-top-gifter", "MOD,TOP 2"],
            ["chat-msg comment", ""]
        ])
    );
    assert_eq!(
        page.eval("document.querySelector('.chat-msg .name').textContent")
            .await,
        nick
    );
    // The avatar came through /media (the page's CSP would also allow nothing else from
    // 127.0.0.1) and decoded.
    page.wait_for(
        "(() => { const i = document.querySelector('.chat-msg img.avatar'); \
         return i && i.complete && i.naturalWidth === 2; })()",
        WAIT,
    )
    .await;
    let src = page
        .eval("new URL(document.querySelector('.chat-msg img.avatar').src).pathname")
        .await;
    assert!(src.as_str().unwrap().starts_with("/media/"), "{src}");
    assert_eq!(host.hits(), 1);
    assert_eq!(page.title().await, title, "no markup ran");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_page_shows_gift_and_avatar_images_from_the_relay_even_for_image_url_templates()
{
    use crate::support::browser::{Browser, require_browser};
    let Some(chromium) = require_browser() else {
        return;
    };
    let host = ImageHost::start().await;
    for name in ["rose.png", "ana.png"] {
        host.images.lock().unwrap().insert(name.into(), png_2x2());
    }
    // The trigger names the gift's original URL, as configs written before the cache do.
    let config = config_file(
        "[media]\nallow_hosts = [\"127.0.0.1\"]\n\n[[trigger]]\non = \"gift\"\nalert = { title = \"{{name}}\", image = \"{{gift.image_url}}\" }\n",
    );
    let relay = InProcess::start(&["--config", config.path().to_str().unwrap()]).await;
    let browser = Browser::launch(&chromium).await;
    let page = browser
        .new_page(&relay.url("/overlays/default/alerts"))
        .await;
    page.wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
        .await;
    let gift = json!({"type": "gift", "count": 1,
        "user": {"id": "1", "unique_id": "ana", "nickname": "Ana", "avatar_url": host.url("ana.png", 1)},
        "gift": {"id": 5655, "name": "Rose", "diamonds": 1, "image_url": host.url("rose.png", 1), "streakable": false}});
    assert_eq!(post_test_event(&relay.url(""), gift).await, 200);
    let loaded = |sel: &str| {
        format!(
            "(() => {{ const i = document.querySelector('{sel}'); \
             return !!i && i.complete && i.naturalWidth === 2 \
             && new URL(i.src).pathname.startsWith('/media/'); }})()"
        )
    };
    page.wait_for(&loaded(".alert-gift"), WAIT).await;
    page.wait_for(&loaded(".alert-avatar"), WAIT).await;
    assert_eq!(host.hits(), 2, "each image fetched once, through the relay");
    browser.close().await;
}

/// A relay of `source` on a free port with this config and data dir; stopped when `stop` is
/// dropped.
async fn relay_of(
    source: tikrelay::events::Source,
    config: &Path,
    data_dir: &Path,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let common = crate::support::common_args(&[
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    let listener = tikrelay::app::bind(&common).await.unwrap();
    let running = tikrelay::app::start(listener, &common, source).unwrap();
    let addr = running.addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(running.serve(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[tokio::test]
async fn a_replay_serves_the_images_the_live_session_cached_after_they_expired() {
    use tikrelay::events::Source;
    let host = ImageHost::start().await;
    let original = host.add("avatar.png", 4000, 1);
    let path = tikrelay::media::relay_url(&original).unwrap();
    let config = config_file("[media]\nallow_hosts = [\"127.0.0.1\"]\n");
    let data = tempfile::tempdir().unwrap();
    let get = |addr: std::net::SocketAddr| {
        let url = format!("http://{addr}{path}");
        async move { http().get(url).send().await.unwrap().status().as_u16() }
    };
    let (live, stop) = relay_of(Source::Tiktok, config.path(), data.path()).await;
    assert_eq!(get(live).await, 200);
    drop(stop);
    // Hours later the link has expired; a replay of the recording maps the same URL.
    host.forbid.store(true, Ordering::SeqCst);
    let (replay, _stop) = relay_of(Source::Replay, config.path(), data.path()).await;
    assert_eq!(get(replay).await, 200);
    assert_eq!(host.hits(), 1);
}
