//! The compose files checked against the binaries they run, without a Docker engine (the
//! specifications in tests/compose_engine.rs run them on one): every service's `command:`
//! parses as a command line of the production binary `campus`, the lab's as one of
//! `campus-sim`, and every `CAMPUS_*` variable they set is one `campus` reads.

use campus::faults::serve_env;
use clap::Parser;

/// The production binary's command line (src/bin/campus.rs flattens the same flags).
#[derive(Debug, Parser)]
#[command(name = "campus")]
struct Campus {
    #[command(flatten)]
    args: campus::serve::Args,
}

fn compose_files() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose");
    let mut files = Vec::new();
    for part in std::fs::read_dir(&dir).unwrap() {
        let path = part.unwrap().path().join("docker-compose.yml");
        if path.exists() {
            files.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(!files.is_empty(), "no compose files under {}", dir.display());
    files
}

fn parses(args: impl IntoIterator<Item = String>) -> Result<campus_sim::cli::Cli, clap::Error> {
    campus_sim::cli::try_parse_from(std::iter::once("campus-sim".to_owned()).chain(args))
}

fn campus_parses(args: impl IntoIterator<Item = String>) -> Result<Campus, clap::Error> {
    Campus::try_parse_from(std::iter::once("campus".to_owned()).chain(args))
}

#[test]
fn every_service_of_a_part_runs_the_production_image_with_a_valid_campus_command_line() {
    for (path, text) in compose_files().into_iter().filter(|(p, _)| !p.contains("/lab/")) {
        let commands: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("command: ")).collect();
        assert!(!commands.is_empty(), "{path}: no command lines");
        for command in commands {
            let args: Vec<String> = serde_json::from_str(command).unwrap_or_else(|e| panic!("{path}: {command}: {e}"));
            let parsed = campus_parses(args);
            assert!(parsed.is_ok(), "{path}: `{command}` does not parse: {}", parsed.unwrap_err());
        }
        assert!(text.contains("image: campus:local") && text.contains("target: service"), "{path}: not the production image");
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = std::fs::read_to_string(root.join("compose/Dockerfile")).unwrap();
    let entrypoint = dockerfile.lines().find_map(|l| l.strip_prefix("ENTRYPOINT ")).expect("the runtime stage's ENTRYPOINT");
    assert_eq!(entrypoint, r#"["campus"]"#, "the service image runs the production binary");
}

#[test]
fn the_lab_image_runs_the_graded_run_and_every_part_it_documents() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = std::fs::read_to_string(root.join("compose/Dockerfile")).unwrap();
    let cmd = dockerfile.lines().skip_while(|l| !l.contains("AS lab")).find_map(|l| l.strip_prefix("CMD ")).expect("the lab's CMD");
    let default: Vec<String> = serde_json::from_str(cmd).unwrap();
    let cli = parses(default.clone()).unwrap_or_else(|e| panic!("CMD {cmd}: {e}"));
    assert!(cli.real_brokers && cli.command.is_none(), "the lab's default is the real graded run: {default:?}");
    let text = std::fs::read_to_string(root.join("compose/lab/docker-compose.yml")).unwrap();
    let runs: Vec<&str> =
        text.lines().filter_map(|l| l.split_once("run --rm lab").map(|(_, rest)| rest.split('#').next().unwrap().trim())).collect();
    for part in ["sync-rest", "async-rabbitmq", "streaming-kafka", "cluster", "explore"] {
        assert!(runs.iter().any(|r| r.starts_with(part)), "compose/lab does not show how to run {part}: {runs:?}");
    }
    for run in runs.iter().filter(|r| !r.is_empty()) {
        let parsed = parses(run.split_whitespace().map(str::to_owned));
        assert!(parsed.is_ok(), "`run --rm lab {run}` does not parse: {}", parsed.unwrap_err());
    }
}

#[test]
fn every_campus_variable_in_a_compose_file_is_read_by_serve() {
    for (path, text) in compose_files() {
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            if let Some(var) = line.trim().split(':').next().filter(|k| k.starts_with("CAMPUS_") || *k == "AMQP_URL") {
                assert!(serve_env().contains(&var), "{path}: {var} is not read by campus");
            }
        }
    }
}

#[test]
fn the_image_build_context_leaves_out_build_output_and_results() {
    let ignore = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dockerignore"))
        .expect("a .dockerignore at the root");
    let entries: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for left_out in ["target/", "out/", ".git/"] {
        assert!(entries.contains(&left_out), "{left_out} goes into the build context: {entries:?}");
    }
}

#[test]
fn the_sync_rest_file_passes_every_fault_through_to_inventory_and_unset_means_no_fault() {
    let (path, text) = compose_files().into_iter().find(|(p, _)| p.contains("sync-rest")).expect("Part A's compose file");
    let mut flags = vec!["campus".to_owned(), "inventory".into(), "--model".into(), "sync-rest".into()];
    for var in campus::faults::FAULT_ENV {
        let pattern = format!("{var}: ${{{var}:-");
        let line = text.lines().find(|l| l.trim().starts_with(&pattern)).unwrap_or_else(|| panic!("{path} does not pass {var} through"));
        let unset = line.trim().trim_start_matches(&pattern).trim_end_matches('}');
        let flag = format!("--{}", var.trim_start_matches("CAMPUS_").to_lowercase().replace('_', "-"));
        flags.extend([flag, unset.to_owned()]);
    }
    let campus = Campus::try_parse_from(&flags).unwrap_or_else(|e| panic!("{flags:?}: {e}"));
    assert!(campus.args.faults.plan().is_healthy(), "{flags:?}: the unset values inject a fault");
}

#[test]
fn each_parts_observability_profile_has_jaeger_and_every_service_passes_the_collector_through() {
    for (path, text) in compose_files().into_iter().filter(|(p, _)| !p.contains("/lab/")) {
        let jaeger = text.find("\n  jaeger:\n").unwrap_or_else(|| panic!("{path}: no jaeger service"));
        assert!(text[jaeger..].contains("profiles: [\"observability\"]"), "{path}: Jaeger is not in the observability profile");
        assert!(text[jaeger..].contains("\"127.0.0.1:16686:16686\""), "{path}: Jaeger's API is not published on loopback");
        assert!(
            text.contains("OTEL_EXPORTER_OTLP_ENDPOINT: ${OTEL_EXPORTER_OTLP_ENDPOINT:-}"),
            "{path}: the services do not pass the collector's address through"
        );
    }
}

#[test]
fn each_parts_observability_profile_scrapes_every_service_of_the_part() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose");
    for model in campus::Model::ALL {
        let dir = root.join(model.name());
        let compose = std::fs::read_to_string(dir.join("docker-compose.yml")).unwrap();
        assert!(compose.contains("profiles: [\"observability\"]"), "{model}: no observability profile");
        let config = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap_or_else(|e| panic!("{model}: prometheus.yml: {e}"));
        for service in campus::Service::of(model) {
            let target = format!("\"{}:{}\"", service.name(), service.default_port());
            assert!(config.contains(&target), "{model}: Prometheus does not scrape {target}");
        }
    }
}
