//! The `utkikk` binary: flags, logging, signals. Everything else lives in the
//! library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use utkikk::agent::Agent;

/// How long in-flight probes get to end after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long open HTTP requests get to finish after SIGTERM; then their
/// connections are dropped (a client holding a half-sent request kept the
/// agent running indefinitely).
const HTTP_GRACE: Duration = Duration::from_secs(3);
/// How long blocking work (a ledger query) may hold up the exit.
const BLOCKING_GRACE: Duration = Duration::from_secs(2);

#[derive(Parser)]
#[command(
    name = "utkikk",
    version,
    about = "Availability monitoring agent: ICMP probing, target states, Prometheus metrics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        /// The YAML configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Directory for the ledger; overrides agent.data_dir.
        #[arg(long = "data-dir", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Address to serve HTTP on; overrides agent.listen_address.
        #[arg(long = "web.listen-address", value_name = "ADDR")]
        listen_address: Option<String>,
        /// Log level: error, warn, info, debug, trace (or an EnvFilter directive).
        #[arg(long = "log.level", value_name = "L", default_value = "info")]
        log_level: String,
        /// Log format. journald: logfmt without `ts=`, each line behind its
        /// syslog priority (`<4>` for warnings), for `journalctl -p`.
        /// Default: journald when stderr is the journal (JOURNAL_STREAM),
        /// logfmt otherwise.
        #[arg(long = "log.format", value_enum)]
        log_format: Option<LogFormat>,
        /// Start even with no targets (the agent would watch nothing).
        #[arg(long = "allow-empty")]
        allow_empty: bool,
        /// HTTP connections served at once; more wait to be accepted.
        /// Lowered when the open-file limit would not leave enough for
        /// probing.
        #[arg(long = "web.max-connections", value_name = "N", default_value_t = 256)]
        max_connections: usize,
    },
    /// Validate a configuration file and report every problem with file:line:column.
    ///
    /// Secret references (env:NAME, file:PATH) are read as the agent would
    /// read them; those it could not read are listed on their own.
    CheckConfig {
        /// The YAML configuration file.
        file: PathBuf,
        /// Read environment variables from this file first (systemd
        /// EnvironmentFile syntax, e.g. /etc/default/utkikk): check exactly
        /// what the service will see.
        #[arg(long = "env-file", value_name = "FILE")]
        env_file: Option<PathBuf>,
        /// Accept a config with no targets.
        #[arg(long = "allow-empty")]
        allow_empty: bool,
    },
    /// Print the JSON Schema of the config file (for editor completion).
    ConfigSchema {
        /// Print the config reference as a Markdown table instead.
        #[arg(long)]
        markdown: bool,
    },
    /// Print the API's OpenAPI 3.1 document (as GET /api/openapi.json
    /// serves it), e.g. to generate a client.
    Openapi,
    /// Back up the ledger while the agent runs, or check a ledger file.
    Ledger {
        #[command(subcommand)]
        action: LedgerCommand,
    },
    /// Write monthly uptime reports from the ledger (also while the agent runs).
    Report(ReportArgs),
}

#[derive(clap::Args)]
struct ReportArgs {
    /// The YAML configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Directory of the ledger; overrides agent.data_dir.
    #[arg(long = "data-dir", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The month: YYYY-MM, `previous` (the last closed month) or
    /// `current` (so far), in Europe/Oslo.
    #[arg(long)]
    month: String,
    /// One member's report.
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    member: Option<String>,
    /// Every member's report.
    #[arg(long)]
    all: bool,
    /// The form.
    #[arg(long, value_enum)]
    format: ReportFormat,
    /// Language: nb (bokmål) or en.
    #[arg(long, value_enum, default_value_t = ReportLang::Nb)]
    lang: ReportLang,
    /// Where to write the files.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Whose record: `region` (merged across the agents that share a
    /// PostgreSQL ledger; the default with `ledger.backend: postgres`,
    /// reads `ledger.url`) or `agent` (this agent's own file).
    #[arg(long, value_enum)]
    scope: Option<ReportScope>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportScope {
    Region,
    Agent,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Copy the ledger to FILE, consistent while the agent writes (SQLite's
    /// online backup API; a plain copy of ledger.db misses what is still in
    /// ledger.db-wal). FILE must not exist; it is checked before it is kept.
    Backup {
        /// The YAML configuration file (for agent.data_dir).
        #[arg(long, required_unless_present = "data_dir")]
        config: Option<PathBuf>,
        /// Directory of the ledger; overrides agent.data_dir.
        #[arg(long = "data-dir", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Where to write the copy.
        file: PathBuf,
    },
    /// Check a ledger file (a backup or the live one): its integrity and
    /// what it holds.
    Check {
        /// The ledger file.
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
    Html,
    Pdf,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportLang {
    Nb,
    En,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Logfmt,
    Json,
    Journald,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig {
            file,
            env_file,
            allow_empty,
        } => check_config(&file, env_file.as_deref(), allow_empty),
        Command::Ledger { action } => ledger(action),
        Command::Openapi => match serde_json::to_string_pretty(&utkikk::http::document()) {
            Ok(text) => print_out(&(text + "\n")),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::ConfigSchema { markdown } => {
            if markdown {
                print_out(&utkikk::config::reference_markdown())
            } else {
                print_out(&utkikk::config::json_schema())
            }
        }
        Command::Report(args) => report(args),
        Command::Run {
            config,
            listen_address,
            data_dir,
            log_level,
            log_format,
            allow_empty,
            max_connections,
        } => {
            if let Err(e) = init_logging(&log_level, log_format) {
                eprintln!("utkikk: {e:#}");
                return ExitCode::from(2);
            }
            let web = Web {
                listen: listen_address,
                max_connections,
            };
            match run(&config, &web, data_dir, allow_empty) {
                Ok(code) => code,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What an empty config is told (it passes only with --allow-empty).
const EMPTY: &str = "no targets: utkikk would watch nothing (give --allow-empty to accept that)";

fn check_config(file: &Path, env_file: Option<&Path>, allow_empty: bool) -> ExitCode {
    use utkikk::config::{load_with, Secrets};
    let vars = match env_file.map(utkikk::config::env_file::read).transpose() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // First the config itself, reading no secret; then its secrets as the
    // agent would read them. What only the second finds is a secret that
    // is not set, reported on its own.
    let structural = load_with(file, &Secrets::Skip);
    let full = load_with(file, &vars.map_or(Secrets::Resolve, Secrets::ResolveWith));
    let problems = structural
        .as_ref()
        .err()
        .map_or(&[][..], |e| &e.problems[..]);
    let unset: Vec<_> = full
        .as_ref()
        .err()
        .map_or(&[][..], |e| &e.problems[..])
        .iter()
        .filter(|p| !problems.contains(p))
        .collect();
    for p in problems {
        eprintln!("{p}");
    }
    if !unset.is_empty() {
        eprintln!(
            "secrets, read as the agent would read them{}:",
            env_file.map_or(String::new(), |f| format!(
                " (with {} and this environment)",
                f.display()
            ))
        );
        for p in &unset {
            eprintln!("  {p}");
        }
    }
    match (&structural, unset.is_empty()) {
        (Ok(inv), true) if inv.targets.is_empty() && !allow_empty => {
            eprintln!("{}: {EMPTY}", file.display());
            ExitCode::FAILURE
        }
        (Ok(inv), true) => {
            let snmp = inv.targets.iter().filter(|t| t.snmp.is_some()).count();
            let checks = inv.targets.iter().filter(|t| t.check.is_some()).count();
            println!(
                "{}: OK ({} members, {} sites, {} targets, {} polled over SNMP, {} service checks)",
                file.display(),
                inv.members.len(),
                inv.sites.len(),
                inv.targets.len(),
                snmp,
                checks
            );
            ExitCode::SUCCESS
        }
        (Ok(_), false) => {
            eprintln!(
                "{}: the config is valid, but {} not usable: the agent would not start (set {} in the environment or the service's EnvironmentFile; --env-file FILE checks one)",
                file.display(),
                plural(unset.len(), "secret is", "secrets are"),
                if unset.len() == 1 { "it" } else { "them" }
            );
            ExitCode::FAILURE
        }
        (Err(_), _) => {
            eprintln!(
                "{}: {} found",
                file.display(),
                plural(problems.len() + unset.len(), "problem", "problems")
            );
            ExitCode::FAILURE
        }
    }
}

fn report(args: ReportArgs) -> ExitCode {
    let ReportArgs {
        config,
        data_dir,
        month,
        member,
        all: _,
        format,
        lang,
        out,
        scope,
    } = args;
    let (config, month, out) = (config.as_path(), month.as_str(), out.as_path());
    use utkikk::config::{load_with, Secrets};
    use utkikk::report::{Format, Lang, ReportError, Who};
    // A report reads no secret but the shared ledger's connection string:
    // the config's other references are not resolved (they live in the
    // service's environment, not the operator's shell).
    let inv = match load_with(config, &Secrets::Skip) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let shared = matches!(
        inv.agent.ledger,
        utkikk::inventory::LedgerBackend::Postgres { .. }
    );
    let region = match (scope, shared) {
        (Some(ReportScope::Region), false) => {
            eprintln!("utkikk: --scope region needs a ledger shared by the agents (ledger.backend: postgres)");
            return ExitCode::from(2);
        }
        (Some(ReportScope::Agent), _) | (None, false) => false,
        (Some(ReportScope::Region) | None, true) => true,
    };
    let inv = if region {
        match load_with(config, &Secrets::LedgerOnly) {
            Ok(inv) => inv,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        inv
    };
    let now = chrono::Utc::now();
    let Some(m) = month_arg(month, now) else {
        eprintln!("utkikk: --month {month:?}: expected YYYY-MM, previous or current");
        return ExitCode::from(2);
    };
    let ledger = data_dir
        .unwrap_or_else(|| inv.agent.data_dir.clone())
        .join(utkikk::ledger::FILE_NAME);
    // Whether it is there and readable, told apart: a data directory the
    // operator may not enter is not a missing ledger.
    let found = match std::fs::File::open(&ledger) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ReportError::NoLedger(ledger.clone()))
        }
        Err(e) => Err(ReportError::LedgerUnreadable {
            path: ledger.clone(),
            reason: e.kind().to_string(),
        }),
    };
    let record =
        match (&inv.agent.ledger, region) {
            // The region's record needs no file of this agent's.
            (utkikk::inventory::LedgerBackend::Postgres { url, ca_pem }, true) => Ok(
                region_record(&inv, url, ca_pem.as_deref(), m, now.timestamp_millis()),
            ),
            _ => found.map(|()| utkikk::ledger::Store::open_when_current(&ledger)),
        };
    let result = match record {
        Err(e) => Err(e),
        Ok(store) => store
            .map_err(utkikk::report::ReportError::from)
            .and_then(|store| {
                utkikk::report::write_files(
                    Some(&store),
                    &inv,
                    &member.map_or(Who::All, Who::Member),
                    m,
                    match format {
                        ReportFormat::Json => Format::Json,
                        ReportFormat::Csv => Format::Csv,
                        ReportFormat::Html => Format::Html,
                        ReportFormat::Pdf => Format::Pdf,
                    },
                    match lang {
                        ReportLang::Nb => Lang::Nb,
                        ReportLang::En => Lang::En,
                    },
                    out,
                    None,
                    now.timestamp_millis(),
                )
            }),
    };
    match result {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("utkikk: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The record merged across the agents for `month` so far, with the
/// region's maintenance windows and outage notes (see
/// `utkikk::sla::vantage::materialise`).
fn region_record(
    inv: &utkikk::inventory::Inventory,
    url: &utkikk::model::secret::Secret,
    ca_pem: Option<&[u8]>,
    month: utkikk::time::calendar::Month,
    now_ms: i64,
) -> Result<utkikk::ledger::Store, utkikk::ledger::LedgerError> {
    use utkikk::time::interval::Interval;
    let Some(window) = month
        .window()
        .filter(|w| w.start < now_ms)
        .map(|w| Interval::new(w.start, w.end.min(now_ms)))
    else {
        // A month not begun: the report says so, as from the file.
        return utkikk::ledger::Store::in_memory();
    };
    let mut reader = utkikk::ledger::shared::Reader::connect(url, ca_pem)?;
    utkikk::sla::vantage::materialise(&mut reader, inv, window, None)
}

fn ledger(action: LedgerCommand) -> ExitCode {
    use utkikk::ledger::backup;
    let show = |file: &Path, s: &backup::Summary| {
        let when = |ms: Option<i64>| ms.map_or("–".to_string(), utkikk::time::oslo::rfc3339);
        println!(
            "{}: OK: schema {}, {} runs from {} to {}, {} transitions, {} device events, {} frozen results, {:.1} MB",
            file.display(),
            s.schema,
            s.runs,
            when(s.first_ms),
            when(s.last_ms),
            s.transitions,
            s.device_events,
            s.frozen_months,
            s.bytes as f64 / 1e6
        );
    };
    let (file, result) = match action {
        LedgerCommand::Check { file } => {
            let r = backup::check(&file);
            (file, r)
        }
        LedgerCommand::Backup {
            config,
            data_dir,
            file,
        } => {
            let dir = match (data_dir, config) {
                (Some(d), _) => d,
                (None, Some(c)) => {
                    match utkikk::config::load_with(&c, &utkikk::config::Secrets::Skip) {
                        Ok(inv) => inv.agent.data_dir,
                        Err(e) => {
                            eprintln!("{e}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
                (None, None) => {
                    eprintln!("utkikk: give --config or --data-dir");
                    return ExitCode::from(2);
                }
            };
            let r = backup::backup(&dir.join(utkikk::ledger::FILE_NAME), &file);
            (file, r)
        }
    };
    match result {
        Ok(s) => {
            show(&file, &s);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("utkikk: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--month`: `YYYY-MM`, or `previous` / `current` in Europe/Oslo.
fn month_arg(s: &str, now: chrono::DateTime<chrono::Utc>) -> Option<utkikk::time::calendar::Month> {
    use chrono::Datelike;
    let today = utkikk::time::oslo::date_of(now.timestamp_millis())?;
    let this = utkikk::time::calendar::Month {
        year: today.year(),
        month: today.month(),
    };
    match s {
        "current" => Some(this),
        "previous" => Some(this.prev()),
        other => utkikk::time::calendar::Month::parse(other),
    }
}

fn init_logging(level: &str, format: Option<LogFormat>) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(level).with_context(|| format!("invalid --log.level {level:?}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    let format = format.unwrap_or(if utkikk::logging::stderr_is_journal() {
        LogFormat::Journald
    } else {
        LogFormat::Logfmt
    });
    match format {
        LogFormat::Journald => registry
            .with(
                tracing_logfmt::builder()
                    .with_timestamp(false)
                    .layer()
                    .with_writer(utkikk::logging::JournalStderr),
            )
            .try_init()?,
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
    }
    Ok(())
}

/// The `--web.*` flags.
struct Web {
    listen: Option<String>,
    max_connections: usize,
}

fn run(
    config: &Path,
    web: &Web,
    data_dir: Option<PathBuf>,
    allow_empty: bool,
) -> anyhow::Result<ExitCode> {
    let inventory = match utkikk::config::load(config) {
        Ok(inv) => inv,
        Err(e) => {
            for p in &e.problems {
                tracing::error!("{p}");
            }
            tracing::error!(
                problems = e.problems.len(),
                "invalid configuration; not starting"
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    if inventory.targets.is_empty() && !allow_empty {
        tracing::error!("{}: {EMPTY}; not starting", config.display());
        return Ok(ExitCode::FAILURE);
    }
    let snmp_devices = inventory
        .targets
        .iter()
        .filter(|t| t.snmp.is_some())
        .count();
    let fds = utkikk::http::serve::fd_budget(web.max_connections, snmp_devices);
    if fds.limit < fds.reserve + web.max_connections as u64 {
        tracing::warn!(
            open_file_limit = fds.limit,
            kept_for_probing = fds.reserve,
            http_connections = fds.connections,
            "the open-file limit leaves room for {} HTTP connections of the {} wanted (--web.max-connections); raise LimitNOFILE{}",
            fds.connections,
            web.max_connections,
            if fds.limit < fds.reserve {
                ": it is below what probing needs, and SNMP polls that cannot open a socket are recorded as not run"
            } else {
                ""
            }
        );
    }
    let listen = match web.listen.as_deref() {
        Some(a) => a
            .parse()
            .with_context(|| format!("invalid --web.listen-address {a:?}: expected IP:PORT"))?,
        None => inventory.agent.listen_address,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr().context("listener has no address")?;
        let shutdown = CancellationToken::new();
        let agent = Agent::start(inventory, config, data_dir)
            .await
            .context("cannot start the probe runtime or the ledger writer")?;
        tracing::info!(
            address = %bound,
            config = %config.display(),
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
        spawn_signal_handler(agent.clone(), shutdown.clone())?;
        let server = utkikk::http::serve(
            listener,
            agent.clone(),
            fds.connections,
            shutdown.clone().cancelled_owned(),
        );
        tokio::pin!(server);
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(HTTP_GRACE).await;
        };
        tokio::select! {
            r = &mut server => r.context("HTTP server failed")?,
            _ = deadline => tracing::warn!(
                "HTTP requests still open {HTTP_GRACE:?} after the stop signal: their connections are dropped"
            ),
        }
        if tokio::time::timeout(STOP_GRACE, agent.stop())
            .await
            .is_err()
        {
            tracing::warn!("probe tasks did not stop within {STOP_GRACE:?}; exiting anyway");
        }
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    });
    // Connection tasks and blocking queries still running are dropped
    // here; the ledger was closed by agent.stop() above.
    runtime.shutdown_timeout(BLOCKING_GRACE);
    result
}

/// SIGHUP reloads; SIGTERM and SIGINT stop.
fn spawn_signal_handler(agent: Agent, shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading configuration");
                    let a = agent.clone();
                    // Errors are logged by reload itself.
                    let _ = tokio::task::spawn_blocking(move || a.reload()).await;
                }
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            }
        }
        shutdown.cancel();
    });
    Ok(())
}

/// `text` to standard output; a closed pipe (`| head`) ends it quietly.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}
