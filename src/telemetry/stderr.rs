//! What a binary (the services' and the lab's) writes on stderr: its tracing events, filtered by
//! `RUST_LOG` or, without it, by the binary's default; coloured only for a person at a terminal
//! (a file, a pipe or CI gets plain text, and so does anyone who sets `NO_COLOR`,
//! <https://no-color.org>).
//!
//! `RUST_LOG` is a list of `target=level` directives and bare levels (`warn,campus=debug`,
//! `lapin=off`), read by [`Targets`]; the span and field filters of `tracing-subscriber`'s
//! `EnvFilter` are not understood. `EnvFilter` was what the binaries used before: its regular
//! expressions made the lab's release build and its test build ask for different features of
//! `regex-automata`, so `cargo run --release` after `cargo test --release` (the test script)
//! compiled the lab a second time, about 2 minutes on 2 cores.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the process's subscriber: events on stderr, filtered by `RUST_LOG` if it parses,
/// else by `default` (and a line on stderr saying that `RUST_LOG` was not understood).
pub fn log_to_stderr(default: &str) {
    let (filter, refused) = filter(std::env::var("RUST_LOG").ok().as_deref(), default);
    if let Some(refused) = refused {
        eprintln!("{refused}");
    }
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colour))
        .with(filter)
        .init();
}

/// The filter of `asked` (`RUST_LOG`'s value) if set and understood, else of `default`; with
/// why `asked` was not taken when it was set but not understood.
fn filter(asked: Option<&str>, default: &str) -> (Targets, Option<String>) {
    let default = || default.parse().expect("a binary's default filter is a list of target=level directives");
    match asked.filter(|a| !a.trim().is_empty()) {
        None => (default(), None),
        Some(asked) => match asked.parse() {
            Ok(filter) => (filter, None),
            Err(e) => {
                (default(), Some(format!("RUST_LOG={asked:?} is not a list of target=level directives ({e}); logging as without it")))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter;

    const DEFAULT: &str = "warn,campus=error,lapin=off";

    #[test]
    fn without_rust_log_the_default_holds_a_bare_level_for_all_and_a_level_per_named_target() {
        let (targets, refused) = filter(None, DEFAULT);
        assert!(refused.is_none());
        assert!(targets.would_enable("tower::buffer", &Level::WARN) && !targets.would_enable("tower::buffer", &Level::INFO));
        assert!(targets.would_enable("campus::services::order", &Level::ERROR));
        assert!(!targets.would_enable("campus::services::order", &Level::WARN), "a target's directive covers its modules");
        assert!(!targets.would_enable("lapin::channel", &Level::ERROR));
    }

    #[test]
    fn rust_log_replaces_the_default_and_one_not_understood_is_refused_with_the_reason() {
        let (targets, refused) = filter(Some("debug"), DEFAULT);
        assert!(refused.is_none() && targets.would_enable("lapin::channel", &Level::DEBUG));
        let (targets, refused) = filter(Some("campus[order{id=1}]=debug"), DEFAULT);
        assert!(refused.is_some_and(|r| r.contains("not a list of target=level directives")));
        assert!(!targets.would_enable("campus::services::order", &Level::WARN), "the default holds");
        assert!(filter(Some(" "), DEFAULT).1.is_none(), "an empty RUST_LOG is no RUST_LOG");
    }
}
