//! Compiles `proto/webcast.proto` with prost-build through protox (pure Rust), so a fresh
//! machine needs no `protoc`. Also writes the file descriptor set, which the relay loads at
//! run time to turn any schema message into JSON (`webcast` pass-through events).
//!
//! And it sets `TIKRELAY_GIT_COMMIT` for `tikrelay --version`: the short commit of the checkout
//! being built, or `unknown` when there is none (a source tarball, no git installed).
use std::{env, fs, path::PathBuf, process::Command};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    git_commit();
    let fds = protox::compile(["webcast.proto"], ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("webcast.bin"), prost::Message::encode_to_vec(&fds))?;
    prost_build::Config::new()
        .btree_map(["."])
        // A fetch result decoded from `Bytes` then shares its buffer with every message's
        // payload instead of copying each one out (the relay's hot path).
        .bytes([".webcast.BaseProtoMessage.payload"])
        .compile_fds(fds)?;
    Ok(())
}

/// Sets `TIKRELAY_GIT_COMMIT`. A packager building from a tarball can pass the commit in the
/// environment variable of the same name.
fn git_commit() {
    println!("cargo:rerun-if-env-changed=TIKRELAY_GIT_COMMIT");
    let commit = env::var("TIKRELAY_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(commit_of_this_checkout)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TIKRELAY_GIT_COMMIT={commit}");
}

/// The short HEAD commit, when the crate is the top of a git checkout (not a tarball unpacked
/// inside some other repository), and the files whose change means a new commit.
fn commit_of_this_checkout() -> Option<String> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR")?);
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&manifest_dir)
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    };
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if fs::canonicalize(&top).ok()? != fs::canonicalize(&manifest_dir).ok()? {
        return None;
    }
    // HEAD moves on checkout; the branch ref (loose or packed) moves on commit. In a worktree
    // these live in different folders, which `--git-path` resolves. Only existing files are
    // named: a missing one would make cargo rerun this script on every build.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = manifest_dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    git(&["rev-parse", "--short", "HEAD"])
}
