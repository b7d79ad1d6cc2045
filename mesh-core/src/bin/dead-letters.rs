//! Lists and replays the dead letters of Reserve Mesh (`RESERVE_DLQ` on `NATS_URL`).
//!
//! ```text
//! dead-letters list   [--consumer NAME] [--event-id ID]
//! dead-letters replay (--all | --consumer NAME | --event-id ID)...
//! ```
//!
//! `list` prints one tab-separated line per letter: sequence, consumer, event type, event id,
//! when it was dead-lettered, reason. `replay` sends the selected letters back to the
//! consumer each was meant for and removes them (see `mesh_core::dead_letters`); it names
//! what it replayed. Replay insists on a selection, so a bare `replay` cannot flood a consumer.

use std::time::Duration;

use anyhow::{Context as _, bail};
use mesh_core::config::env_or;
use mesh_core::dead_letters::{self, DeadLetter, Selection};

const USAGE: &str = "usage: dead-letters list [--consumer NAME] [--event-id ID]\n       dead-letters replay (--all | --consumer NAME | --event-id ID)...";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = mesh_core::telemetry::init_job("dead-letters")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, options)) = args.split_first() else {
        bail!("{USAGE}");
    };
    let (selection, all) = parse_selection(options)?;
    let url: String = env_or("NATS_URL", "nats://127.0.0.1:4222".to_owned())?;
    let client = tokio::time::timeout(Duration::from_secs(10), async_nats::connect(&url))
        .await
        .map_err(|_| anyhow::anyhow!("NATS at {url} did not answer within 10 s"))?
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    let js = async_nats::jetstream::new(client);
    match command.as_str() {
        "list" => {
            let letters = dead_letters::list(&js, &selection)
                .await
                .map_err(|err| anyhow::anyhow!("cannot read the dead letters: {err}"))?;
            for letter in &letters {
                println!("{}", line(letter));
            }
            eprintln!("{} dead letter(s)", letters.len());
        }
        "replay" => {
            if !all && selection.consumer.is_none() && selection.event_id.is_none() {
                bail!("replay needs --all, --consumer or --event-id\n{USAGE}");
            }
            let replayed = dead_letters::replay(&js, &selection)
                .await
                .map_err(|err| anyhow::anyhow!("replay stopped: {err}"))?;
            for letter in &replayed {
                println!("replayed\t{}", line(letter));
            }
            eprintln!("{} dead letter(s) replayed", replayed.len());
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
    Ok(())
}

/// Reads `--consumer`, `--event-id` and `--all`.
fn parse_selection(options: &[String]) -> anyhow::Result<(Selection, bool)> {
    let mut selection = Selection::default();
    let mut all = false;
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match option.as_str() {
            "--all" => all = true,
            "--consumer" => {
                selection.consumer =
                    Some(options.next().context("--consumer needs a name")?.clone());
            }
            "--event-id" => {
                selection.event_id =
                    Some(options.next().context("--event-id needs an id")?.clone());
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    Ok((selection, all))
}

fn line(letter: &DeadLetter) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        letter.sequence,
        letter.consumer,
        letter.event_type,
        if letter.event_id.is_empty() {
            "-"
        } else {
            &letter.event_id
        },
        letter.dead_lettered_at,
        letter.reason
    )
}
