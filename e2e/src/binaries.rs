//! Where the harness finds the binaries it starts, and a refusal to start stale ones.
//!
//! `cargo test --workspace` builds test targets, not the binaries an end-to-end test starts
//! as processes: run `cargo build --workspace --bins` first (`script/test` does). A binary
//! older than any source it is built from would test yesterday's code and pass or fail for
//! the wrong reason, so the harness refuses it with the command that fixes it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The command that builds what the harness starts.
pub const BUILD_COMMAND: &str = "cargo build --workspace --bins";

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn workspace_target() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    }
}

/// The binary `name` (of crate `crate_dir`), checked to exist and to be newer than every
/// source it is built from: the crate's, mesh-core's and proto's sources and migrations, and
/// Cargo.lock. `MESH_BIN_DIR` (binaries built elsewhere, e.g. release ones) skips the age
/// check: the caller vouches for them.
pub fn fresh_binary(name: &str, crate_dir: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("MESH_BIN_DIR") {
        return existing(PathBuf::from(dir).join(name));
    }
    let binary = existing(workspace_target().join("debug").join(name));
    let built = modified(&binary).unwrap_or(SystemTime::UNIX_EPOCH);
    let root = workspace_root();
    let crates = [crate_dir, "mesh-core", "proto"];
    let sources = crates
        .iter()
        .flat_map(|dir| {
            ["src", "migrations", "reserve", "build.rs", "Cargo.toml"]
                .map(|part| root.join(dir).join(part))
        })
        .chain([root.join("Cargo.lock")]);
    if let Some(newer) = sources
        .filter_map(|path| newest_file(&path))
        .find(|(_, when)| *when > built)
    {
        panic!(
            "{} is older than {}: rebuild the binaries first ({BUILD_COMMAND})",
            binary.display(),
            newer.0.display()
        );
    }
    binary
}

fn existing(binary: PathBuf) -> PathBuf {
    assert!(
        binary.exists(),
        "{} not found: build the binaries first ({BUILD_COMMAND})",
        binary.display()
    );
    binary
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// The most recently modified file at or below `path`, with its time.
fn newest_file(path: &Path) -> Option<(PathBuf, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return meta.modified().ok().map(|when| (path.to_path_buf(), when));
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(std::result::Result::ok)
        .filter_map(|entry| newest_file(&entry.path()))
        .max_by_key(|(_, when)| *when)
}
