//! What the release archives promise, run as the real binary: `--version` names the version and
//! the commit it was built from, and the example config shipped in every archive is valid.

use std::path::Path;
use std::process::Command;

use crate::support::binary;

/// The commit build.rs should have found: this checkout's short HEAD, or `unknown` when the
/// crate is not the top of a git checkout (a source tarball).
fn expected_commit() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"]);
    let ours =
        top.is_some_and(|t| std::fs::canonicalize(t).ok() == std::fs::canonicalize(dir).ok());
    match (ours, git(&["rev-parse", "--short", "HEAD"])) {
        (true, Some(commit)) => commit,
        _ => "unknown".to_string(),
    }
}

#[test]
fn version_prints_the_package_version_and_the_build_commit() {
    if std::env::var_os("TIKRELAY_GIT_COMMIT").is_some() {
        // A packager's override wins over git; nothing to compare against then.
        return;
    }
    let out = Command::new(binary()).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim_end(),
        format!(
            "tikrelay {} ({})",
            env!("CARGO_PKG_VERSION"),
            expected_commit()
        )
    );
}

/// Runs `tikrelay check --config FILE`; the exit code and everything printed.
fn check_config(file: &Path) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(file)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn example_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tikrelay.toml")
}

#[test]
fn the_example_config_passes_check() {
    let (code, text) = check_config(&example_config());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ok"), "{text}");
}

/// Saved by Notepad, the example has CRLF line endings; it must stay valid, and a mistake in it
/// must still be reported at the right line and column.
#[test]
fn the_example_config_with_windows_line_endings_passes_check_and_errors_keep_their_line() {
    let dir = tempfile::tempdir().unwrap();
    // LF first, whatever the checkout did to the file.
    let text = std::fs::read_to_string(example_config())
        .unwrap()
        .replace("\r\n", "\n");
    let crlf = dir.path().join("tikrelay.toml");
    std::fs::write(&crlf, text.replace('\n', "\r\n")).unwrap();
    let (code, out) = check_config(&crlf);
    assert_eq!(code, Some(0), "{out}");

    let line = text
        .lines()
        .position(|l| l == "on = \"follow\"")
        .expect("the example has a follow trigger")
        + 1;
    let broken = text.replacen("on = \"follow\"", "on = \"folow\"", 1);
    std::fs::write(&crlf, broken.replace('\n', "\r\n")).unwrap();
    let (code, out) = check_config(&crlf);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!("tikrelay.toml:{line}:6")),
        "line {line}, column 6 of the CRLF file: {out}"
    );
}
