//! The config file where people look for it (issue 12): created on the first start in the
//! per-user folder, reloaded while the relay runs (a broken save keeps the last good config
//! and is reported with line and column), the dashboard's trigger list and test buttons, the
//! sign server's API key stored in the file and masked everywhere, and `check` naming sound
//! and image files no theme has. Every relay here gets its config folder in a temp folder.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::browser::{Browser, require_browser};
use crate::support::{
    InProcess, RelayProcess, WAIT, WsClient, binary, get_json, http, post_test_event,
};

/// The relay binary with its per-user folders (config, data) under `home`.
fn relay_in(home: &Path, args: &[&str]) -> RelayProcess {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("RUST_LOG", "info")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("APPDATA", home.join("appdata"))
        .env_remove("TIKRELAY_CONFIG")
        .env_remove("TIKRELAY_SIGN_API_KEY");
    RelayProcess::start_command(command)
}

/// Waits for the next `config` message (sent after every reload).
async fn next_config(ws: &mut WsClient) -> Value {
    ws.next_of_type("config").await
}

/// The titles of the alerts waiting on queue `main`.
async fn pending_titles(base: &str) -> Vec<String> {
    let q = get_json(format!("{base}/api/queues")).await;
    let mut titles: Vec<String> = Vec::new();
    if let Some(playing) = q["queues"]["main"]["playing"].as_object() {
        titles.push(playing["title"].as_str().unwrap_or("").to_string());
    }
    for a in q["queues"]["main"]["next"].as_array().into_iter().flatten() {
        titles.push(a["title"].as_str().unwrap_or("").to_string());
    }
    titles
}

/// Waits until an alert titled `title` is on queue `main`.
async fn wait_for_alert(base: &str, title: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let titles = pending_titles(base).await;
        if titles.iter().any(|t| t == title) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alert {title:?}; queue holds {titles:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_creates_the_commented_config_in_an_empty_config_dir() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("config/tikrelay/tikrelay.toml");
    assert!(!file.exists());
    let mut relay = relay_in(home.path(), &["demo", "--port", "0", "--rate", "0"]);
    let text = std::fs::read_to_string(&file).expect("config file created");
    assert_eq!(text, tikrelay::config::DEFAULT_CONFIG);
    assert!(text.contains("# An alert queue"), "comments explain it");
    let status = get_json(relay.url("/api/config")).await;
    assert_eq!(status["file"], json!(file.display().to_string()));
    assert_eq!(status["ok"], json!(true));
    let names: Vec<&str> = status["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["follow", "share", "gift"]);
    assert_eq!(relay.interrupt(), Some(0));
    let log = relay.stderr.lock().unwrap().clone();
    assert!(log.contains("created the config file"), "{log}");

    // The next start uses the file as the streamer left it.
    std::fs::write(
        &file,
        "# mine\n[[trigger]]\nname = \"hello\"\non = \"follow\"\nalert = { title = \"hi\" }\n",
    )
    .unwrap();
    let relay = relay_in(home.path(), &["demo", "--port", "0", "--rate", "0"]);
    let status = get_json(relay.url("/api/config")).await;
    assert_eq!(status["triggers"][0]["name"], json!("hello"));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("# mine\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_edit_applies_while_running_and_a_broken_one_keeps_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tikrelay.toml");
    let follow = "[queues.main]\nmax_pending = 50\n\n[[trigger]]\nname = \"follow\"\non = \"follow\"\nalert = { title = \"followed\" }\n";
    std::fs::write(&file, follow).unwrap();
    let path = file.to_str().unwrap();
    let relay = relay_in(
        dir.path(),
        &["demo", "--port", "0", "--rate", "0", "--config", path],
    );
    let base = relay.url("");
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    ws.next_of_type("hello").await;

    // Before the edit a share fires nothing.
    assert_eq!(post_test_event(&base, json!({"type": "follow"})).await, 200);
    wait_for_alert(&base, "followed").await;
    assert_eq!(post_test_event(&base, json!({"type": "share"})).await, 200);

    // A trigger added while running fires.
    let with_share = format!(
        "{follow}\n[[trigger]]\nname = \"share\"\non = \"share\"\nalert = {{ title = \"shared\" }}\n"
    );
    std::fs::write(&file, &with_share).unwrap();
    let msg = next_config(&mut ws).await;
    assert_eq!(msg["ok"], json!(true), "{msg}");
    assert!(
        !pending_titles(&base).await.contains(&"shared".to_string()),
        "the share before the edit fired nothing"
    );
    assert_eq!(post_test_event(&base, json!({"type": "share"})).await, 200);
    wait_for_alert(&base, "shared").await;

    // A broken edit: reported with line and column, the last good config keeps running.
    let broken = with_share.replace("on = \"share\"", "on = \"shaer\"");
    std::fs::write(&file, &broken).unwrap();
    let msg = next_config(&mut ws).await;
    assert_eq!(msg["ok"], json!(false), "{msg}");
    let line = broken
        .lines()
        .position(|l| l.contains("shaer"))
        .map(|i| i + 1);
    assert_eq!(msg["error"]["line"], json!(line), "{msg}");
    assert_eq!(msg["error"]["column"], json!(6), "{msg}");
    assert_eq!(msg["error"]["file"], json!(path), "{msg}");
    let status = get_json(format!("{base}/api/config")).await;
    assert_eq!(status["ok"], json!(false));
    assert!(
        status["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown event type"),
        "{status}"
    );
    assert_eq!(status["triggers"].as_array().unwrap().len(), 2, "last good");
    let before = pending_titles(&base).await.len();
    assert_eq!(post_test_event(&base, json!({"type": "share"})).await, 200);
    let deadline = tokio::time::Instant::now() + WAIT;
    while pending_titles(&base).await.len() == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old config stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = relay.stderr.lock().unwrap().clone();
    assert!(
        log.contains(&format!("{path}:{}:6", line.unwrap())) && log.contains("last good config"),
        "{log}"
    );

    // Fixing it recovers, and the fixed file's triggers apply.
    let fixed = broken.replace(
        "on = \"shaer\"\nalert = { title = \"shared\" }",
        "on = \"share\"\nalert = { title = \"shared again\" }",
    );
    std::fs::write(&file, &fixed).unwrap();
    let msg = next_config(&mut ws).await;
    assert_eq!(msg["ok"], json!(true), "{msg}");
    assert_eq!(
        get_json(format!("{base}/api/config")).await["error"],
        Value::Null
    );
    assert_eq!(post_test_event(&base, json!({"type": "share"})).await, 200);
    wait_for_alert(&base, "shared again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_key_is_stored_in_the_file_masked_in_answers_and_absent_from_logs() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("config/tikrelay/tikrelay.toml");
    let relay = relay_in(home.path(), &["demo", "--port", "0", "--rate", "0"]);
    let key = "euler_SECRET_0123456789abcdefKQ7Z";
    let url = relay.url("/api/config/sign-key");

    // Another site's page may not set it.
    let refused = http()
        .put(&url)
        .header("Origin", "http://evil.example")
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert!(!std::fs::read_to_string(&file).unwrap().contains(key));

    let res = http()
        .put(&url)
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let answer = res.text().await.unwrap();
    assert!(!answer.contains("SECRET"), "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["sign_api_key"],
        json!({"set": true, "masked": "••••••KQ7Z"})
    );

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(tikrelay::config::DEFAULT_CONFIG),
        "comments and settings kept:\n{text}"
    );
    assert!(
        text.contains(&format!("[live]\nsign_api_key = \"{key}\"")),
        "{text}"
    );

    let status = get_json(relay.url("/api/config")).await.to_string();
    assert!(!status.contains("SECRET"), "{status}");
    assert!(status.contains("KQ7Z"), "{status}");
    let bad = http().put(&url).body("{\"key\": 5}").send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    // The file change is noticed like any edit; nothing logged holds the key.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = relay.stderr.lock().unwrap().clone();
    assert!(log.contains("sign server API key stored"), "{log}");
    assert!(!log.contains("SECRET"), "{log}");
}

#[test]
fn check_reports_a_sound_no_theme_has() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tikrelay.toml");
    std::fs::write(
        &file,
        "[[trigger]]\nname = \"rose\"\non = \"gift\"\nalert = { title = \"x\", sound = \"sounds/airhorn.mp3\", image = \"{{gift.image_url}}\" }\n\
         [[trigger]]\nname = \"ok\"\non = \"follow\"\nalert = { title = \"x\", image = \"images/gifts/rose.svg\" }\n",
    )
    .unwrap();
    let out = crate::support::binary_command()
        .args(["check", "--config", file.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sounds/airhorn.mp3") && stderr.contains("rose"),
        "{stderr}"
    );
    assert!(stderr.contains("line 4, column 32"), "{stderr}");
    assert!(!stderr.contains("rose.svg"), "that file exists: {stderr}");

    std::fs::write(
        &file,
        "[[trigger]]\non = \"follow\"\nalert = { title = \"x\", image = \"images/gifts/rose.svg\" }\n",
    )
    .unwrap();
    let out = crate::support::binary_command()
        .args(["check", "--config", file.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_triggers_and_its_test_buttons_fire_them() {
    let Some(chromium) = require_browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tikrelay.toml");
    std::fs::write(
        &file,
        "[queues.main]\n[queues.side]\n\
         [[trigger]]\nname = \"big <gift>\"\non = \"gift\"\ngift = \"Lion\"\nmin_count = 3\nalert = { queue = \"side\", title = \"{{name}}: {{gift.name}} x{{count}}\" }\n\
         [[trigger]]\nname = \"follow\"\non = \"follow\"\ncooldown_ms = 3600000\nalert = { title = \"followed\" }\n",
    )
    .unwrap();
    let relay = InProcess::start(&["--config", file.to_str().unwrap()]).await;
    let browser = Browser::launch(&chromium).await;
    let page = browser.new_page(&relay.url("/")).await;
    page.wait_for(
        "document.querySelectorAll('#config-triggers [data-trigger]').length === 2",
        WAIT,
    )
    .await;
    let names = page
        .eval("[...document.querySelectorAll('#config-triggers .name')].map(e => e.textContent)")
        .await;
    assert_eq!(names, json!(["big <gift>", "follow"]), "names as text");

    page.eval("document.querySelector('#config-triggers [data-trigger=\"0\"] button').click()")
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let q = get_json(relay.url("/api/queues")).await;
        let side = &q["queues"]["side"];
        let titles: Vec<String> = side["playing"]
            .as_object()
            .into_iter()
            .map(|a| a["title"].as_str().unwrap().to_string())
            .chain(
                side["next"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a["title"].as_str().unwrap().to_string()),
            )
            .collect();
        if !titles.is_empty() {
            assert_eq!(titles, ["Test Viewer: Lion x3"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no test alert: {q}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The cooldown does not hold a test back: two clicks, two alerts.
    for _ in 0..2 {
        page.eval("document.querySelector('#config-triggers [data-trigger=\"1\"] button').click()")
            .await;
    }
    page.wait_for(
        "(document.getElementById('config-test-status').textContent || '').includes('follow')",
        WAIT,
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let q = get_json(relay.url("/api/queues")).await;
        let main = &q["queues"]["main"];
        let n = main["playing"].as_object().map_or(0, |_| 1)
            + main["next"].as_array().map_or(0, Vec::len);
        if n == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{q}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken save shows on the dashboard with file, line and column; fixing it clears it.
    std::fs::write(
        &file,
        "[[trigger]]\non = \"follow\"\nalert = { titel = \"x\" }\n",
    )
    .unwrap();
    let shown = page
        .wait_for(
            "(function(){var b=document.getElementById('config-error');return !b.hidden && b.textContent;})()",
            WAIT,
        )
        .await;
    let shown = shown.as_str().unwrap().to_string();
    assert!(
        shown.contains(&format!("{}:3:", file.display())) && shown.contains("titel"),
        "{shown}"
    );
    std::fs::write(
        &file,
        "[[trigger]]\nname = \"only\"\non = \"follow\"\nalert = { title = \"x\" }\n",
    )
    .unwrap();
    page.wait_for(
        "document.getElementById('config-error').hidden && document.querySelectorAll('#config-triggers [data-trigger]').length === 1",
        WAIT,
    )
    .await;
    assert!(
        page.console_errors().is_empty(),
        "{:?}",
        page.console_errors()
    );
    browser.close().await;
}
