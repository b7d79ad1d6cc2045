//! Dev mode's token helper (`script/token`): prints a bearer token signed by the local dev
//! key, generating the key pair (and the `jwks.json` the services read) on first use.
//!
//! ```text
//! mesh-token buyer kim            # a buyer token for kim
//! mesh-token seller,buyer lee     # several roles
//! mesh-token admin ops --ttl 600  # valid for ten minutes
//! mesh-token --init               # only create the key pair; prints the JWKS path
//! mesh-token --jwks               # the public key set (JWKS) of the key
//! mesh-token buyer kim --out PATH # write the output to PATH instead of stdout
//! ```
//!
//! Keys live in `MESH_AUTH_DIR` (default `.run/auth`). Tokens name `AUTH_ISSUER` and
//! `AUTH_AUDIENCE` when those are set (the Helm chart's bundled issuer, trusted in `jwt`
//! mode, where an init container writes the JWKS with `--jwks --out`), else the dev issuer,
//! which only dev-mode meshes trust.

use std::path::PathBuf;
use std::process::ExitCode;

use mesh_core::auth::Role;
use mesh_core::auth::config::DEFAULT_AUDIENCE;
use mesh_core::auth::dev_keys::{DEFAULT_TTL_SECS, DevIssuer};

const USAGE: &str = "usage: mesh-token <buyer|seller|admin>[,role…] <subject> [--ttl SECONDS]\n       mesh-token --init\n       mesh-token --jwks\n       (any of them with --out PATH: write there instead of stdout)";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let out = match take_option(&mut args, "--out") {
        Ok(out) => out,
        Err(message) => {
            eprintln!("mesh-token: {message}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(output) => match out {
            None => {
                println!("{output}");
                ExitCode::SUCCESS
            }
            Some(path) => match std::fs::write(&path, format!("{output}\n")) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("mesh-token: cannot write {path}: {err}");
                    ExitCode::FAILURE
                }
            },
        },
        Err(message) => {
            eprintln!("mesh-token: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<String, String> {
    let dir =
        std::env::var_os("MESH_AUTH_DIR").map_or_else(|| PathBuf::from(".run/auth"), PathBuf::from);
    let mut issuer = DevIssuer::open_or_create(&dir)
        .map_err(|err| format!("cannot open the dev key in {}: {err}", dir.display()))?;
    if let Some(name) = non_empty_env("AUTH_ISSUER") {
        let audience = non_empty_env("AUTH_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.into());
        issuer = issuer.issuing_as(name, audience);
    }
    let mut positional = Vec::new();
    let mut ttl = DEFAULT_TTL_SECS;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--init" => return Ok(issuer.jwks_path().display().to_string()),
            "--jwks" => return Ok(issuer.public_keys().to_string()),
            "--ttl" => {
                let value = args.next().ok_or("--ttl needs a number of seconds")?;
                ttl = value
                    .parse()
                    .map_err(|_| format!("--ttl {value:?} is not a number of seconds"))?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ => positional.push(arg),
        }
    }
    let [roles, subject] = positional.as_slice() else {
        return Err(USAGE.into());
    };
    let roles = roles
        .split(',')
        .map(|name| Role::parse(name.trim()).ok_or(format!("unknown role {name:?}\n{USAGE}")))
        .collect::<Result<Vec<_>, _>>()?;
    if subject.trim().is_empty() {
        return Err(format!("the subject must not be empty\n{USAGE}"));
    }
    Ok(issuer.mint(subject.trim(), &roles, ttl))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Removes `name VALUE` from `args`, returning VALUE.
fn take_option(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    let Some(at) = args.iter().position(|arg| arg == name) else {
        return Ok(None);
    };
    if at + 1 >= args.len() {
        return Err(format!("{name} needs a file path"));
    }
    let value = args.remove(at + 1);
    args.remove(at);
    Ok(Some(value))
}
