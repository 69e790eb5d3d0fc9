//! Hot reload over a real websocket, without a browser: what a save in `--overlays` or
//! `--templates` pushes to pages (`reload`, `template_error`) and what the relay then serves.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{InProcess, WsClient, get_json, http};

/// The next `reload` or `template_error`, skipping everything else.
async fn next_change(ws: &mut WsClient) -> Value {
    loop {
        let msg = ws.next_json().await;
        if msg["type"] == "reload" || msg["type"] == "template_error" {
            return msg;
        }
    }
}

/// No further change arrives within a quiet period (longer than the debounce).
async fn assert_quiet(ws: &mut WsClient) {
    while let Some(msg) = ws.try_next_json(Duration::from_millis(700)).await {
        assert!(
            msg["type"] != "reload" && msg["type"] != "template_error",
            "unexpected {msg}"
        );
    }
}

async fn page(relay: &InProcess, path: &str) -> (u16, String) {
    let res = http().get(relay.url(path)).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_become_reload_and_template_error_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let overlays = tmp.path().join("overlays");
    let theme = overlays.join("mine");
    tikrelay::themes::scaffold::new_theme(&theme).unwrap();
    let templates = tmp.path().join("templates");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"),
        &templates,
    );
    let relay = InProcess::start(&[
        "--overlays",
        overlays.to_str().unwrap(),
        "--templates",
        templates.to_str().unwrap(),
    ])
    .await;
    let mut ws = WsClient::connect(&relay.ws_url("/ws?types=-")).await;
    assert_eq!(ws.next_json().await["type"], "hello");

    // A stylesheet saved by rename (temporary file, then rename over the original).
    let css = theme.join("style.css");
    let text = std::fs::read_to_string(&css).unwrap();
    std::fs::write(theme.join(".style.css.swp"), "x").unwrap();
    std::fs::write(theme.join("style.css.tmp"), format!("{text}\n.x{{}}")).unwrap();
    std::fs::rename(theme.join("style.css.tmp"), &css).unwrap();
    let msg = next_change(&mut ws).await;
    assert_eq!(
        (&msg["type"], &msg["theme"], &msg["path"], &msg["css_only"]),
        (
            &"reload".into(),
            &"mine".into(),
            &"style.css".into(),
            &true.into()
        ),
        "{msg}"
    );
    assert_quiet(&mut ws).await;

    // A burst of template saves: at least one full reload, and the last version serves.
    let hbs = theme.join("chat.hbs");
    let good = std::fs::read_to_string(&hbs).unwrap();
    for v in 1..=10 {
        std::fs::write(
            &hbs,
            good.replace("{{/layout}}", &format!("<b>v{v}</b>{{{{/layout}}}}")),
        )
        .unwrap();
    }
    let msg = next_change(&mut ws).await;
    assert_eq!(
        (&msg["type"], &msg["path"], &msg["css_only"]),
        (&"reload".into(), &"chat.hbs".into(), &false.into()),
        "{msg}"
    );
    let mut reloads = 1;
    while let Some(msg) = ws.try_next_json(Duration::from_millis(700)).await {
        if msg["type"] == "reload" {
            reloads += 1;
        }
    }
    assert!(
        reloads <= 3,
        "a burst of 10 saves is debounced, not {reloads} reloads"
    );
    assert!(
        page(&relay, "/overlays/mine/chat")
            .await
            .1
            .contains("<b>v10</b>")
    );

    // Broken: an error with file and line, no reload, the last good version serves.
    std::fs::write(
        &hbs,
        good.replace("{{/layout}}", "{{#each fields}}\n{{/layout}}"),
    )
    .unwrap();
    let msg = next_change(&mut ws).await;
    assert_eq!(msg["type"], "template_error", "{msg}");
    assert_eq!(
        (&msg["theme"], &msg["file"]),
        (&"mine".into(), &"chat.hbs".into())
    );
    assert!(
        msg["line"].as_u64().is_some() && msg["message"].as_str().is_some(),
        "{msg}"
    );
    assert_quiet(&mut ws).await;
    let (status, html) = page(&relay, "/overlays/mine/chat").await;
    assert_eq!(status, 200);
    assert!(html.contains("<b>v10</b>"));
    let themes: Value = get_json(relay.url("/api/themes")).await;
    assert_eq!(themes["problems"][0]["file"], "chat.hbs", "{themes}");

    // Fixed: reload, the problem is gone.
    std::fs::write(&hbs, &good).unwrap();
    assert_eq!(next_change(&mut ws).await["type"], "reload");
    let themes: Value = get_json(relay.url("/api/themes")).await;
    assert_eq!(themes["problems"], Value::Array(vec![]));

    // A shared template: every page reloads (theme null).
    let layout = templates.join("layout.hbs");
    let text = std::fs::read_to_string(&layout).unwrap();
    std::fs::write(&layout, text.replace("<body", "<!-- mine -->\n<body")).unwrap();
    let msg = next_change(&mut ws).await;
    assert_eq!(
        (&msg["type"], &msg["theme"], &msg["path"]),
        (&"reload".into(), &Value::Null, &"layout.hbs".into()),
        "{msg}"
    );
    assert!(
        page(&relay, "/overlays/default/likes")
            .await
            .1
            .contains("<!-- mine -->")
    );

    // Deleted page: reload, then 404. A new page: served.
    std::fs::remove_file(theme.join("goal.hbs")).unwrap();
    assert_eq!(next_change(&mut ws).await["path"], "goal.hbs");
    assert_eq!(page(&relay, "/overlays/mine/goal").await.0, 404);
    std::fs::write(
        theme.join("extra.hbs"),
        "{{#> layout}}<p>extra</p>{{/layout}}",
    )
    .unwrap();
    assert_eq!(next_change(&mut ws).await["path"], "extra.hbs");
    assert!(
        page(&relay, "/overlays/mine/extra")
            .await
            .1
            .contains("<p>extra</p>")
    );

    // A whole theme folder renamed: the old name is gone, the new one serves.
    std::fs::rename(&theme, overlays.join("renamed")).unwrap();
    while page(&relay, "/overlays/renamed/chat").await.0 != 200 {
        next_change(&mut ws).await;
    }
    assert_eq!(page(&relay, "/overlays/mine/chat").await.0, 404);
}
