//! Hostile and careless theme folders and trigger texts, against the real binary: templates
//! that recurse or nest thousands deep, symlink loops, huge files, a deleted and re-created
//! overlays folder, and names with spaces. Each test checks the relay still serves afterwards.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    RelayProcess, WAIT, WsClient, binary_command, get_json, http, post_test_event,
};

const RECURSIVE: &str = "{{#*inline \"r\"}}{{> r}}{{/inline}}{{> r}}";

fn deep_ifs() -> String {
    format!("{}x{}", "{{#if user}}".repeat(3000), "{{/if}}".repeat(3000))
}

/// Runs the binary to its end; a run that does not end within [`WAIT`] is a hang and fails.
/// The real binary serving `overlays`, with a demo that sends nothing by itself.
fn demo_with_overlays(overlays: &Path) -> RelayProcess {
    RelayProcess::start(&[
        "--port",
        "0",
        "--overlays",
        overlays.to_str().unwrap(),
        "demo",
        "--rate",
        "0",
    ])
}

fn run(args: &[&str]) -> Output {
    let mut child = binary_command()
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tikrelay");
    let deadline = std::time::Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("tikrelay {args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn new_theme(overlays: &Path, name: &str) -> PathBuf {
    let dir = overlays.join(name);
    tikrelay::themes::scaffold::new_theme(&dir).unwrap();
    dir
}

fn page_text(body: &str) -> String {
    format!("{{{{#> layout}}}}\n{body}\n{{{{/layout}}}}\n")
}

/// The next `reload` or `template_error`.
async fn next_change(ws: &mut WsClient) -> Value {
    loop {
        let msg = ws.next_json().await;
        if msg["type"] == "reload" || msg["type"] == "template_error" {
            return msg;
        }
    }
}

async fn status(url: String) -> u16 {
    http().get(url).send().await.unwrap().status().as_u16()
}

/// The relay answers, and its process is still running.
async fn assert_serving(relay: &mut RelayProcess) {
    assert_eq!(
        relay.child.try_wait().unwrap(),
        None,
        "the relay died; stderr:\n{}",
        relay.stderr.lock().unwrap()
    );
    assert_eq!(status(relay.url("/healthz")).await, 200);
    assert_eq!(status(relay.url("/overlays/default/alerts")).await, 200);
}

/// Waits until the relay's log holds `needle`.
async fn wait_for_log(relay: &RelayProcess, needle: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !relay.stderr.lock().unwrap().contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {needle:?} in the log:\n{}",
            relay.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn check_refuses_recursive_and_deep_templates_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let overlays = tmp.path().join("overlays");
    let theme = new_theme(&overlays, "mine");
    std::fs::write(theme.join("alerts.hbs"), page_text(RECURSIVE)).unwrap();
    std::fs::write(theme.join("chat.hbs"), page_text(&deep_ifs())).unwrap();
    // Two pages that include each other.
    std::fs::write(theme.join("likes.hbs"), page_text("{{> mine/goal}}")).unwrap();
    std::fs::write(theme.join("goal.hbs"), page_text("{{> mine/likes}}")).unwrap();
    let out = run(&["check", "--overlays", overlays.to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("alerts.hbs: line 2"), "{said}");
    assert!(said.contains("includes itself"), "{said}");
    assert!(said.contains("chat.hbs: line 2"), "{said}");
    assert!(said.contains("nest more than 40"), "{said}");
    assert!(
        said.contains("likes.hbs") || said.contains("goal.hbs"),
        "{said}"
    );

    // The same texts in a trigger: refused by config validation, with file:line:column.
    for bad in [RECURSIVE.to_string(), deep_ifs()] {
        let config = tmp.path().join("bad.toml");
        std::fs::write(
            &config,
            format!("[[trigger]]\non = \"follow\"\nalert = {{ title = '{bad}' }}\n"),
        )
        .unwrap();
        let out = run(&["--config", config.to_str().unwrap(), "check"]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{said}");
        assert!(
            said.contains(&format!("{}:3:19:", config.display())),
            "{said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_a_recursive_template_keeps_the_relay_and_the_last_good_page() {
    let tmp = tempfile::tempdir().unwrap();
    let overlays = tmp.path().join("overlays");
    let theme = new_theme(&overlays, "mine");
    let good = std::fs::read_to_string(theme.join("alerts.hbs")).unwrap();
    std::fs::write(
        theme.join("alerts.hbs"),
        good.replace("{{/layout}}", "<i>good</i>{{/layout}}"),
    )
    .unwrap();
    let mut relay = demo_with_overlays(&overlays);
    let mut ws = WsClient::connect(&relay.ws_url("/ws?types=-")).await;
    assert_eq!(ws.next_json().await["type"], "hello");

    for (file, body, says) in [
        ("alerts.hbs", RECURSIVE.to_string(), "includes itself"),
        ("alerts.hbs", deep_ifs(), "nest more than 40"),
        // A computed partial name is only known while rendering: the guard stops it there.
        (
            "alerts.hbs",
            "{{#*inline \"alerts\"}}{{> (lookup this \"page\")}}{{/inline}}{{> alerts}}".into(),
            "more than 16 deep",
        ),
    ] {
        std::fs::write(theme.join(file), page_text(&body)).unwrap();
        let msg = next_change(&mut ws).await;
        assert_eq!(msg["type"], "template_error", "{msg}");
        assert_eq!(
            (&msg["theme"], &msg["file"]),
            (&json!("mine"), &json!(file))
        );
        assert_eq!(msg["line"], 2, "{msg}");
        assert!(msg["message"].as_str().unwrap().contains(says), "{msg}");
        assert_serving(&mut relay).await;
        let res = http()
            .get(relay.url("/overlays/mine/alerts"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            res.text().await.unwrap().contains("<i>good</i>"),
            "last good serves"
        );
    }
    // The dashboard lists the problem.
    let state = get_json(relay.url("/api/themes")).await;
    assert!(state.to_string().contains("alerts.hbs"), "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_text_that_recurses_at_render_time_skips_the_alert_not_the_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    // Passes validation (the include's name is computed from the event), recurses when a
    // follow arrives.
    std::fs::write(
        &config,
        "[[trigger]]\non = \"follow\"\nalert = { title = '{{#*inline \"follow\"}}{{> (lookup this \"type\")}}{{/inline}}{{> follow}}' }\n\
         [[trigger]]\non = \"share\"\nalert = { title = \"{{name}} shared\" }\n",
    )
    .unwrap();
    let mut relay = RelayProcess::start(&[
        "--port",
        "0",
        "--config",
        config.to_str().unwrap(),
        "demo",
        "--rate",
        "0",
    ]);
    let mut ws = WsClient::connect(&relay.ws_url("/ws?queue=main")).await;
    let base = relay.url("");
    let base = base.trim_end_matches('/');
    assert_eq!(
        post_test_event(base, json!({"type": "follow", "user": {"nickname": "Ann"}})).await,
        200
    );
    wait_for_log(&relay, "more than 16 deep").await;
    assert_serving(&mut relay).await;
    assert_eq!(
        post_test_event(base, json!({"type": "share", "user": {"nickname": "Bo"}})).await,
        200
    );
    // The follow's alert comes without its title (logged); the share's comes whole.
    loop {
        let msg = ws.next_of_type("alert").await;
        if msg["event"]["type"] == "share" {
            assert_eq!(msg["vars"]["title"], "Bo shared", "{msg}");
            break;
        }
        ws.send_json(json!({"op": "alert_done", "alert_id": msg["alert_id"]}))
            .await;
    }
}

/// Two links to `.` (a loop), a link to `/` (a big tree) and a link to a file outside.
fn add_links(theme: &Path) {
    std::os::unix::fs::symlink(".", theme.join("a")).unwrap();
    std::os::unix::fs::symlink(".", theme.join("b")).unwrap();
    std::os::unix::fs::symlink("/", theme.join("root")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", theme.join("passwd.json")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", theme.join("passwd.css")).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_loops_and_big_folders_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let overlays = tmp.path().join("overlays");
    let theme = new_theme(&overlays, "mine");
    add_links(&theme);
    // Deeper than the depth limit, more entries than the entry limit, a file over the size limit.
    let mut deep = theme.join("d");
    for _ in 0..12 {
        deep = deep.join("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("x.json"), "{").unwrap();
    let many = overlays.join("many");
    new_theme(&overlays, "many");
    std::fs::create_dir_all(many.join("frames")).unwrap();
    for i in 0..2100 {
        std::fs::write(many.join(format!("frames/{i}.png")), "").unwrap();
    }
    std::fs::File::create(theme.join("huge.mp3"))
        .unwrap()
        .set_len(tikrelay::themes::MAX_STATIC_FILE_BYTES + 1)
        .unwrap();

    let out = run(&["check", "--overlays", overlays.to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("more than 8 deep"), "{said}");
    assert!(said.contains("more than 2000 files"), "{said}");

    let mut relay = demo_with_overlays(&overlays);
    assert_eq!(status(relay.url("/overlays/mine/alerts")).await, 200);
    for outside in ["passwd.css", "root/etc/passwd", "huge.mp3"] {
        assert_eq!(
            status(relay.url(&format!("/overlays/mine/{outside}"))).await,
            404,
            "{outside}"
        );
    }
    assert_eq!(status(relay.url("/overlays/mine/style.css")).await, 200);
    wait_for_log(&relay, "over the 20971520-byte limit").await;

    // Links created while running, then a save: the reload ends and the new page serves.
    let mut ws = WsClient::connect(&relay.ws_url("/ws?types=-")).await;
    assert_eq!(ws.next_json().await["type"], "hello");
    let other = new_theme(&overlays, "other");
    add_links(&other);
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(other.join("chat.hbs"), page_text("<b>v2</b>")).unwrap();
    loop {
        let msg = next_change(&mut ws).await;
        if msg["type"] == "reload" && msg["theme"] == "other" {
            let res = http()
                .get(relay.url("/overlays/other/chat"))
                .send()
                .await
                .unwrap();
            if res.text().await.unwrap().contains("<b>v2</b>") {
                break;
            }
        }
    }
    assert_serving(&mut relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_and_recreated_overlays_folder_is_watched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let overlays = tmp.path().join("overlays");
    let theme = new_theme(&overlays, "mine");
    let mut relay = demo_with_overlays(&overlays);
    let mut ws = WsClient::connect(&relay.ws_url("/ws?types=-")).await;
    assert_eq!(ws.next_json().await["type"], "hello");

    std::fs::remove_dir_all(&overlays).unwrap();
    wait_for_log(&relay, "is gone: hot reload waits for it").await;
    // The themes keep serving as last loaded.
    assert_eq!(status(relay.url("/overlays/mine/chat")).await, 200);
    assert_serving(&mut relay).await;

    new_theme(&overlays, "mine");
    wait_for_log(&relay, "is back: watching it for theme changes again").await;
    // The next save reloads pages again.
    let chat = theme.join("chat.hbs");
    let good = std::fs::read_to_string(&chat).unwrap();
    std::fs::write(
        &chat,
        good.replace("{{/layout}}", "<b>after</b>{{/layout}}"),
    )
    .unwrap();
    loop {
        let msg = next_change(&mut ws).await;
        if msg["type"] == "reload" && msg["path"] == "chat.hbs" {
            break;
        }
    }
    let res = http()
        .get(relay.url("/overlays/mine/chat"))
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("<b>after</b>"));
    assert_serving(&mut relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn theme_page_and_file_names_with_spaces_and_accents_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let overlays = tmp.path().join("overlays");
    let theme = new_theme(&overlays, "my thème");
    std::fs::write(theme.join("café page.hbs"), page_text("<b>café</b>")).unwrap();
    std::fs::write(theme.join("my image.svg"), "<svg/>").unwrap();
    let mut relay = demo_with_overlays(&overlays);
    for path in [
        "/overlays/my%20th%C3%A8me/alerts",
        "/overlays/my%20th%C3%A8me/caf%C3%A9%20page",
        "/overlays/my%20th%C3%A8me/my%20image.svg",
        "/overlays/my%20th%C3%A8me/style.css",
    ] {
        assert_eq!(status(relay.url(path)).await, 200, "{path}");
    }
    // The dashboard and the startup lines give the encoded URL, and it works.
    let themes = get_json(relay.url("/api/themes")).await;
    let listed = themes.to_string();
    assert!(
        listed.contains("/overlays/my%20th%C3%A8me/caf%C3%A9%20page"),
        "{listed}"
    );
    assert!(
        relay
            .stdout_lines
            .iter()
            .any(|l| l.contains("/overlays/my%20th%C3%A8me/alerts")),
        "{:?}",
        relay.stdout_lines
    );
    assert_eq!(status(relay.url("/overlays/no%20such/alerts")).await, 404);
    assert_serving(&mut relay).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_theme_folder_that_is_a_link_still_hot_reloads() {
    let tmp = tempfile::tempdir().unwrap();
    let kept = new_theme(tmp.path(), "kept-elsewhere");
    let overlays = tmp.path().join("overlays");
    std::fs::create_dir_all(&overlays).unwrap();
    std::os::unix::fs::symlink(&kept, overlays.join("linked")).unwrap();
    let mut relay = demo_with_overlays(&overlays);
    let mut ws = WsClient::connect(&relay.ws_url("/ws?types=-")).await;
    assert_eq!(ws.next_json().await["type"], "hello");
    assert_eq!(status(relay.url("/overlays/linked/chat")).await, 200);
    std::fs::write(kept.join("chat.hbs"), page_text("<b>linked v2</b>")).unwrap();
    let msg = next_change(&mut ws).await;
    assert_eq!(
        (&msg["type"], &msg["theme"], &msg["path"]),
        (&json!("reload"), &json!("linked"), &json!("chat.hbs")),
        "{msg}"
    );
    let res = http()
        .get(relay.url("/overlays/linked/chat"))
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("<b>linked v2</b>"));
    assert_serving(&mut relay).await;
}
