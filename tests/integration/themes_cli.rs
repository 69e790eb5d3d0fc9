//! `tikrelay theme new` and `tikrelay check --overlays`, run as the real binary: exit codes,
//! and messages that name the file and line and say what to do.

use std::process::Output;

use crate::support::binary_command;

fn run(args: &[&str]) -> Output {
    binary_command()
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run tikrelay")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn theme_new_copies_the_builtin_theme_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("overlays/mine");
    let dir_s = dir.to_str().unwrap();
    let out = run(&["theme", "new", dir_s]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!("--overlays {dir_s}")),
        "says how to serve it: {said}"
    );
    assert!(
        said.contains("/overlays/mine/"),
        "names the overlay URL: {said}"
    );
    for file in [
        "theme.json",
        "style.css",
        "chat.hbs",
        "combo.js",
        "sounds/gift.wav",
    ] {
        assert!(dir.join(file).is_file(), "{file} copied");
    }
    std::fs::write(dir.join("style.css"), "/* mine */").unwrap();
    let again = run(&["theme", "new", dir_s]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(dir.join("style.css")).unwrap(),
        "/* mine */"
    );

    let ok = run(&[
        "check",
        "--overlays",
        tmp.path().join("overlays").to_str().unwrap(),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let single = run(&["check", "--overlays", dir_s]);
    assert_eq!(single.status.code(), Some(0), "{}", text(&single));
}

#[test]
fn check_names_the_file_and_line_of_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let overlays = tmp.path().join("overlays");
    let theme = overlays.join("mine");
    tikrelay::themes::scaffold::new_theme(&theme).unwrap();
    std::fs::write(
        theme.join("chat.hbs"),
        "{{#> layout}}\n<p>fine</p>\n<p>{{#each fields}}</p>\n{{/layout}}\n",
    )
    .unwrap();
    std::fs::write(
        theme.join("likes.hbs"),
        "{{#> layout}}{{> no_such_partial}}{{/layout}}",
    )
    .unwrap();
    let manifest = std::fs::read_to_string(theme.join("theme.json")).unwrap();
    std::fs::write(
        theme.join("theme.json"),
        manifest.replace(
            r#""type": "bool", "default": true"#,
            r#""type": "toggle", "default": true"#,
        ),
    )
    .unwrap();
    let out = run(&["check", "--overlays", overlays.to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("chat.hbs: line "), "{said}");
    assert!(
        said.contains("likes.hbs"),
        "render problems count too: {said}"
    );
    assert!(said.contains("no_such_partial"), "{said}");
    assert!(said.contains("theme.json: line "), "{said}");
    assert!(said.contains("unknown type \"toggle\""), "{said}");

    std::fs::write(
        theme.join("theme.json"),
        "{\n  \"name\": \"x\",\n  \"pages\": 7\n}",
    )
    .unwrap();
    let out = run(&["check", "--overlays", overlays.to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("theme.json: line 3"), "{said}");
}
