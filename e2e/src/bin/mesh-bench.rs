//! The mesh's benchmark binary: `mesh-bench [load|embedded|open|fault|tracing]`; each mode is a module of
//! `e2e::bench`, which says what it measures. `script/bench` builds and runs it.

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "load".to_owned());
    match mode.as_str() {
        "load" => e2e::bench::load::run().await,
        "embedded" => e2e::bench::load::run_embedded().await,
        "open" => e2e::bench::open::run().await,
        "fault" => e2e::bench::fault::run().await,
        "tracing" => e2e::bench::tracing_cost::run().await,
        other => {
            eprintln!(
                "unknown mode {other:?}: use `load` (default), `embedded`, `open`, `fault` or `tracing`"
            );
            std::process::exit(2);
        }
    }
}
