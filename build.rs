//! Compiles `proto/webcast.proto` with prost-build through protox (pure Rust), so a fresh
//! machine needs no `protoc`. Also writes the file descriptor set, which the relay loads at
//! run time to turn any schema message into JSON (`webcast` pass-through events).
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
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
