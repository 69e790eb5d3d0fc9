//! The fuzz corpus, replayed without the fuzzer: every file of `fuzz/corpus/<target>/` and of
//! `fuzz/regressions/<target>/` (inputs that crashed a target before a fix, kept) goes
//! through the same `tikrelay::fuzzing` function its fuzz target calls. A crash fixed since
//! fails here again if it comes back.
//!
//! The seed inputs were written by `write_seed_corpus` (ignored; run it with `--ignored` to
//! write them again) from real frames and messages built by `support::webcast`, the built-in
//! config, and the built-in theme's files.

use std::path::{Path, PathBuf};

use prost::Message;
use tikrelay::fuzzing;
use tikrelay::proto::{self, ProtoMessageFetchResult};
use tikrelay::tiktok::frame;

use crate::support::webcast as wc;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("push_frame", fuzzing::push_frame),
    ("normalise", fuzzing::normalise),
    ("config", fuzzing::config),
    ("theme_json", fuzzing::theme_json),
    ("template", fuzzing::template),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: Target, dir: &Path) -> usize {
    let files = files(&dir.join(target));
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        // A panic names the file, so it can be run alone with `cargo fuzz run TARGET FILE`.
        let result = std::panic::catch_unwind(|| run(&bytes));
        assert!(result.is_ok(), "{target} fails on {}", file.display());
    }
    files.len()
}

#[test]
fn every_corpus_file_goes_through_its_target() {
    for (target, run) in TARGETS {
        let n = replay(target, *run, &fuzz_dir().join("corpus"));
        assert!(
            n >= 5,
            "fuzz/corpus/{target} holds {n} files; the corpus is missing"
        );
    }
}

/// `fuzz/regressions/template/` holds the two templates of issue 8 that overflowed the stack
/// (a partial that includes itself, 3,000 nested `{{#if}}`): the template target crashed on
/// both until template limits existed.
#[test]
fn every_fixed_crash_goes_through_its_target() {
    let mut n = 0;
    for (target, run) in TARGETS {
        n += replay(target, *run, &fuzz_dir().join("regressions"));
    }
    assert!(n >= 2, "fuzz/regressions holds {n} files; it is missing");
}

/// Real messages of every type the relay normalises, plus ones it passes through.
fn messages() -> Vec<(&'static str, proto::BaseProtoMessage)> {
    vec![
        ("chat", wc::chat(1, 1, "hello <b>&\"'")),
        (
            "follow",
            wc::social(2, 2, "pm_main_follow_message_viewer_2"),
        ),
        ("share", wc::social(3, 3, "pm_mt_guidance_share")),
        ("like", wc::like(4, 4, 15, 1200)),
        ("join", wc::join(5, 5, 42)),
        ("viewers", wc::viewers(6, 100, 2000)),
        ("emote", wc::emote(7, 6, "7100000000000000001")),
        ("gift", wc::gift(8, 7, (5655, 1, true), (77, 1, false))),
        ("gift_end", wc::gift(9, 7, (5655, 1, true), (77, 5, true))),
        (
            "gift_single",
            wc::gift(10, 8, (6064, 100, false), (0, 1, true)),
        ),
        ("control", wc::control(11, 3)),
        ("super_fan", wc::super_fan(12, 9)),
        ("subscribe", wc::subscribe(13, 10, 3)),
        (
            "battle_start",
            wc::battle_start(14, 99, &[(1, "alice"), (2, "bob")]),
        ),
        (
            "battle_score",
            wc::battle_score(15, 99, &[(1, 50), (2, 70)], false),
        ),
        ("envelope", wc::envelope(16, 500, 10)),
        ("question", wc::question(17, 11, "what game?")),
        ("pin", wc::pin(18, 12, "pinned")),
        ("room", wc::room_message(19, "welcome")),
        ("unknown", wc::unknown(20, "WebcastSomethingNewMessage")),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// Writes the seed inputs into `fuzz/corpus/`. Not a check: run it by hand when the input
/// formats change (`cargo test --test integration write_seed_corpus -- --ignored`).
#[test]
#[ignore]
fn write_seed_corpus() {
    let corpus = fuzz_dir().join("corpus");
    let all = messages();

    let dir = corpus.join("push_frame");
    for (i, (name, msg)) in all.iter().enumerate() {
        let result = ProtoMessageFetchResult {
            messages: vec![msg.clone()],
            cursor: format!("c{i}"),
            ..Default::default()
        };
        let compress = i % 2 == 0;
        let f = frame::msg_frame(i as i64, 1000 + i as i64, &result, compress);
        write(&dir, &format!("frame-{name}"), &f.encode_to_vec());
    }
    let whole = ProtoMessageFetchResult {
        messages: all.iter().map(|(_, m)| m.clone()).collect(),
        ..Default::default()
    };
    write(
        &dir,
        "frame-all-gzip",
        &frame::msg_frame(1, 2, &whole, true).encode_to_vec(),
    );
    write(&dir, "fetch-result-all", &whole.encode_to_vec());
    let hb = proto::WebcastPushFrame {
        seq_id: 5,
        payload_type: "hb".into(),
        ..Default::default()
    };
    write(&dir, "heartbeat", &hb.encode_to_vec());
    // Gzip with a header file name and comment (no compress_type header: the magic says gzip).
    let mut named = flate2::GzBuilder::new()
        .filename("x")
        .comment("c")
        .write(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut named, &whole.encode_to_vec()).unwrap();
    let f = proto::WebcastPushFrame {
        payload_type: "msg".into(),
        payload: named.finish().unwrap(),
        ..Default::default()
    };
    write(&dir, "frame-gzip-named", &f.encode_to_vec());

    let dir = corpus.join("normalise");
    for (name, msg) in &all {
        let input = fuzzing::normalise_input(&[(msg.method.as_str(), 0, &msg.payload)]);
        write(&dir, name, &input);
    }
    // A gift combo that grows, repeats a message (a duplicate) and times out, then a new one.
    let combo: Vec<proto::BaseProtoMessage> = (1..=4)
        .map(|n| wc::gift(100 + n, 7, (5655, 1, true), (77, n as i32, false)))
        .collect();
    let mut seq: Vec<(&str, u8, &[u8])> = combo
        .iter()
        .map(|m| (m.method.as_str(), 1, m.payload.as_ref()))
        .collect();
    seq.push((combo[1].method.as_str(), 0, combo[1].payload.as_ref()));
    seq.push((combo[3].method.as_str(), 20, combo[3].payload.as_ref()));
    write(&dir, "combo", &fuzzing::normalise_input(&seq));
    let mixed: Vec<(&str, u8, &[u8])> = all
        .iter()
        .enumerate()
        .map(|(i, (_, m))| (m.method.as_str(), (i % 3) as u8, m.payload.as_ref()))
        .collect();
    write(&dir, "mixed", &fuzzing::normalise_input(&mixed));

    let dir = corpus.join("config");
    write(
        &dir,
        "default.toml",
        tikrelay::config::DEFAULT_CONFIG.as_bytes(),
    );
    write(&dir, "full.toml", FULL_CONFIG.as_bytes());
    write(&dir, "empty.toml", b"");

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = corpus.join("theme_json");
    let theme = root.join("overlays/default/theme.json");
    write(&dir, "default.json", &std::fs::read(theme).unwrap());
    write(
        &dir,
        "minimal.json",
        br#"{"name": "x", "pages": {"p": {}}}"#,
    );
    write(
        &dir,
        "fields.json",
        br##"{"fields": {"c": {"type": "color", "default": "#ff0000"}, "s": {"type": "select", "options": ["a", "b"], "default": "a"}, "n": {"type": "number", "default": 5, "min": 0, "max": 10}, "b": {"type": "bool", "default": true}, "f": {"type": "font", "default": "Inter"}, "t": {"type": "text", "default": "", "pages": ["p"]}}, "pages": {"p": {"width": 300, "height": 200, "description": "d"}}}"##,
    );

    let dir = corpus.join("template");
    for folder in ["overlays/default", "templates"] {
        for file in files(&root.join(folder)) {
            if file.extension().is_some_and(|e| e == "hbs") {
                let name = file.file_name().unwrap().to_string_lossy().to_string();
                write(&dir, &name, &std::fs::read(&file).unwrap());
            }
        }
    }
    write(
        &dir,
        "helpers.hbs",
        br#"{{#> layout}}{{#each fields}}{{@key}}={{this}}{{/each}}{{#if (gt size.width 10)}}{{{json page_config}}}{{else}}{{lookup fields "x"}}{{/if}}{{#*inline "p"}}[{{theme}}]{{/inline}}{{> p}}{{#with size}}{{width}}{{/with}}{{/layout}}"#,
    );
}

const FULL_CONFIG: &str = r#"
[queues.main]
default_duration_ms = 4000
max_pending = 50

[queues.side-2]
max_pending = 10

[rcon]
addr = "127.0.0.1:25575"
password = "secret"
min_interval_ms = 50
queue_capacity = 100
timeout_ms = 2000

[webhooks]
timeout_ms = 1000
max_attempts = 3
retry_backoff_ms = 200
queue_capacity = 100
min_interval_ms = 0

[[trigger]]
name = "big gifts"
on = "gift"
gift = ["Rose", 5655]
min_diamonds = 10
min_count = 2
repeat = "count"
max_repeat = 5
cooldown_ms = 1000
user_cooldown_ms = 5000
alert = { queue = "side-2", duration_ms = 3000, title = "{{name}} x{{count}}", subtitle = "{{gift.name}}", sound = "ding.mp3", image = "{{gift.image_url}}" }
rcon = ["say {{name}} sent {{gift.name}}", "give @a diamond {{count}}"]
webhook = { url = "http://127.0.0.1:9/hook", body = '{"who":"{{name}}","n":{{count}}}', content_type = "application/json" }

[[trigger]]
on = "comment"
pattern = "(?i)^!jump\\b"
alert = { title = "{{text}}" }

[[trigger]]
on = "like"
every_likes = 100

[[trigger]]
on = "follow"
follow_once_per = "session"
alert = { title = "{{name}}" }

[goals]
likes = 1
follows = 2
diamonds = 3
shares = 4
"#;
