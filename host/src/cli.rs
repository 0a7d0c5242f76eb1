//! The command line. Exit codes: 0 the scan succeeded (findings or not), 1 a finding is
//! at or above `--fail-on`, 2 error, 3 the scan ran but is incomplete (an analyzer failed
//! or was stopped; the report says which).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::analyzers::{Registry, Sources};
use crate::config::Config;
use crate::home::Home;
use crate::layers::cache::LayerCache;
use crate::model::Severity;
use crate::report::{Format, TableStyle};
use crate::sandbox::Sandbox;
use crate::scan::ScanOptions;
use crate::source::auth::Credential;
use crate::source::{ResolveOptions, Source};

/// Exit code of a scan that ran but could not analyse everything.
pub const EXIT_INCOMPLETE: u8 = 3;
/// Exit code of an error.
pub const EXIT_ERROR: u8 = 2;
/// Exit code of a scan with a finding at or above `--fail-on`.
pub const EXIT_FINDINGS: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "Scan container images for vulnerable packages; analyzers run sandboxed in WebAssembly."
)]
pub struct Cli {
    /// State directory (component cache, layer cache, advisory database).
    #[arg(long, global = true, env = "BULKHEAD_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Configuration file (default: $BULKHEAD_HOME/config.toml, if present).
    #[arg(long, global = true, env = "BULKHEAD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print nothing on stderr but errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// More log output on stderr (-v, -vv).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scan an image or root filesystem: inventory its packages, match them against the
    /// advisory database, report findings.
    Scan(Box<ScanArgs>),
    /// Manage analyzers.
    #[command(subcommand)]
    Analyzers(AnalyzersCommand),
    /// Manage the advisory database.
    #[command(subcommand)]
    Db(crate::db::DbCommand),
    /// Run the scan-on-push service (webhook, workers, REST API) with `--config FILE`, or
    /// manage its API tokens (`serve token create|revoke|list`). See docs/service.md.
    Serve(crate::service::ServeArgs),
}

#[derive(Debug, Args)]
struct AnalyzerFlags {
    /// Load a third-party analyzer component (repeatable).
    #[arg(long = "analyzer", value_name = "PATH.wasm")]
    analyzers: Vec<PathBuf>,
    /// Load every *.wasm in this directory too (repeatable), besides $BULKHEAD_HOME/analyzers.
    #[arg(long = "analyzers-dir", value_name = "DIR")]
    analyzer_dirs: Vec<PathBuf>,
    /// Do not load the built-in analyzers.
    #[arg(long)]
    no_builtin_analyzers: bool,
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// What to scan: NAME[:TAG|@DIGEST] (a registry; alpine:3.19 = docker.io/library/alpine:3.19),
    /// oci:DIR[:TAG], docker-archive:FILE or dir:PATH.
    #[arg(value_name = "IMAGE")]
    source: String,
    /// Platform to select from a multi-platform image (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Registry reached over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Registry user name (else ~/.docker/config.json).
    #[arg(long, env = "BULKHEAD_USERNAME", requires = "password")]
    username: Option<String>,
    /// Registry password or token.
    #[arg(
        long,
        env = "BULKHEAD_PASSWORD",
        hide_env_values = true,
        requires = "username"
    )]
    password: Option<String>,
    /// Bound of the layer result cache, e.g. 500MB or 2GiB (overrides cache.max_bytes).
    #[arg(long, value_name = "SIZE")]
    cache_max_size: Option<String>,
    /// Do not read or write the layer result cache.
    #[arg(long)]
    no_cache: bool,
    /// Report format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    analyzers: AnalyzerFlags,
    /// Wall-clock limit per analyzer call, in milliseconds (overrides sandbox.time_ms).
    #[arg(long, value_name = "MS")]
    analyzer_timeout: Option<u64>,
    /// Memory limit per analyzer, in MiB (overrides sandbox.memory_bytes).
    #[arg(long, value_name = "MIB")]
    analyzer_memory: Option<usize>,
    #[command(flatten)]
    findings: FindingFlags,
}

#[derive(Debug, Args)]
struct FindingFlags {
    /// Advisory database (default: $BULKHEAD_HOME/db/advisories.db).
    #[arg(long, env = "BULKHEAD_DB", value_name = "FILE")]
    db: Option<PathBuf>,
    /// Inventory only: do not match against advisories.
    #[arg(long, conflicts_with_all = ["fail_on", "severity", "ignore_unfixed", "vex"])]
    inventory_only: bool,
    /// Report only these severities (comma-separated: critical,high,medium,low,negligible,unknown).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    severity: Vec<Severity>,
    /// Leave out findings that have no fixed version yet.
    #[arg(long)]
    ignore_unfixed: bool,
    /// Exit with 1 when a reported finding is at or above this severity.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    fail_on: Option<Severity>,
    /// A finding at or above this severity makes the image unhealthy (overrides
    /// policy.health_threshold; default high).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    health_threshold: Option<Severity>,
    /// Suppression rules (default: ./.bulkheadignore when it exists).
    #[arg(long, value_name = "FILE")]
    ignore_file: Option<PathBuf>,
    /// OpenVEX document whose not_affected / fixed statements suppress findings (repeatable).
    #[arg(long, value_name = "FILE")]
    vex: Vec<PathBuf>,
    /// In the table, list every package, not only the vulnerable ones.
    #[arg(long)]
    all_packages: bool,
}

/// Output of listings (`analyzers list`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum AnalyzersCommand {
    /// List the analyzers a scan would run.
    List {
        #[arg(long, short, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        #[command(flatten)]
        analyzers: AnalyzerFlags,
    },
}

/// Parse arguments, run, and map the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.quiet, cli.verbose);
    match run(cli) {
        Ok(code) => code,
        // `bulkhead scan … | head`: the reader went away; that is not our error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_tracing(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BULKHEAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    let home = Home::resolve(cli.home.as_deref())?;
    // `serve`'s --config is the service configuration, not the scanner's config.toml.
    let command = match cli.command {
        Command::Serve(args) => {
            return crate::service::run_cli(args, cli.config.as_deref(), &home);
        }
        other => other,
    };
    let mut config = match &cli.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(&home.config_file(), false)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bulkhead")
        .build()
        .context("cannot start the async runtime")?;
    match command {
        Command::Scan(args) => {
            if let Some(ms) = args.analyzer_timeout {
                config.sandbox.time_ms = ms;
            }
            if let Some(mib) = args.analyzer_memory {
                config.sandbox.memory_bytes = mib << 20;
            }
            runtime.block_on(scan(&home, &config, *args, cli.quiet))
        }
        Command::Analyzers(AnalyzersCommand::List { format, analyzers }) => {
            runtime.block_on(list(&home, &config, format, &analyzers))
        }
        Command::Db(cmd) => {
            let stdout = std::io::stdout();
            runtime.block_on(crate::db::run(cmd, &home, &config, &mut stdout.lock()))
        }
        // Handled above, before the scanner's config is read.
        Command::Serve(args) => crate::service::run_cli(args, cli.config.as_deref(), &home),
    }
}

fn sources(home: &Home, config: &Config, flags: &AnalyzerFlags) -> Sources {
    let mut dirs = vec![home.analyzers()];
    dirs.extend(config.analyzers.dirs.iter().cloned());
    dirs.extend(flags.analyzer_dirs.iter().cloned());
    Sources {
        builtin: !flags.no_builtin_analyzers,
        paths: flags.analyzers.clone(),
        dirs,
    }
}

async fn scan(home: &Home, config: &Config, args: ScanArgs, quiet: bool) -> Result<ExitCode> {
    let source = Source::parse(&args.source).map_err(anyhow::Error::msg)?;
    let mut resolve = ResolveOptions {
        progress: !quiet,
        ..ResolveOptions::default()
    };
    if let Some(p) = &args.platform {
        resolve.platform = p.parse().map_err(anyhow::Error::msg)?;
    }
    resolve.insecure_registries = config.registries.insecure.clone();
    resolve
        .insecure_registries
        .extend(args.insecure_registries.iter().cloned());
    if let (Some(username), Some(password)) = (&args.username, &args.password) {
        resolve.credentials = Some(Credential::Basic {
            username: username.clone(),
            password: password.clone(),
        });
    }
    let cache = if args.no_cache {
        None
    } else {
        let max = match &args.cache_max_size {
            Some(s) => crate::layers::cache::parse_size(s).map_err(anyhow::Error::msg)?,
            None => config.cache.max_bytes,
        };
        let dir = home.layers();
        Some(Arc::new(LayerCache::open(&dir, max).with_context(
            || format!("cannot open the layer cache {}", dir.display()),
        )?))
    };
    let assess = assess_options(home, config, &args.findings)?;
    let opts = ScanOptions {
        resolve,
        extract: config.extract.clone(),
        layers: config.layers.clone(),
        cache,
        parallel_layers: 3,
        assess: assess.map(Arc::new),
    };
    let sandbox = Arc::new(Sandbox::new(&home.components(), config.sandbox.clone())?);
    let registry = Registry::load(&sandbox, &sources(home, config, &args.analyzers)).await?;
    let result = crate::scan::scan(sandbox, &registry, &source, &opts).await?;
    tracing::info!(
        total_ms = result.stats.total.as_millis() as u64,
        layers = result.stats.layers,
        downloaded = result.stats.layers_downloaded,
        cached = result.stats.layers_from_cache,
        "scanned {}",
        result.reference
    );
    let mut style = TableStyle {
        colour: false,
        all_packages: args.findings.all_packages,
    };
    match &args.output {
        Some(path) => {
            let mut buf = Vec::new();
            crate::report::write(&result, args.format, style, &mut buf)?;
            std::fs::write(path, buf)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            style.colour =
                std::io::IsTerminal::is_terminal(&stdout) && std::env::var_os("NO_COLOR").is_none();
            let mut out = stdout.lock();
            crate::report::write(&result, args.format, style, &mut out)?;
            out.flush()?;
        }
    }
    if let (Some(fail_on), Some(assessment)) = (args.findings.fail_on, &result.assessment) {
        let hits = assessment
            .findings
            .iter()
            .filter(|f| f.severity >= fail_on)
            .count();
        if hits > 0 {
            eprintln!(
                "{hits} finding(s) at or above {fail_on} in {} (--fail-on {fail_on})",
                crate::report::sanitize(&result.reference)
            );
            return Ok(ExitCode::from(EXIT_FINDINGS));
        }
    }
    if !result.complete() {
        for d in result
            .diagnostics
            .iter()
            .filter(|d| d.level == crate::model::Level::Error)
        {
            eprintln!("error: {}", crate::report::sanitize(&d.message));
        }
        eprintln!("error: the scan of {} is incomplete", result.reference);
        return Ok(ExitCode::from(EXIT_INCOMPLETE));
    }
    Ok(ExitCode::SUCCESS)
}

/// The assessment stage's options, from flags and config.
fn assess_options(
    home: &Home,
    config: &Config,
    flags: &FindingFlags,
) -> Result<Option<crate::assess::AssessOptions>> {
    if flags.inventory_only {
        return Ok(None);
    }
    let mut suppressions = crate::assess::Suppressions::default();
    let default_ignore = PathBuf::from(".bulkheadignore");
    match &flags.ignore_file {
        Some(path) => suppressions.load_ignore_file(path)?,
        None if default_ignore.is_file() => suppressions.load_ignore_file(&default_ignore)?,
        None => {}
    }
    for vex in &flags.vex {
        suppressions.load_vex(vex)?;
    }
    Ok(Some(crate::assess::AssessOptions {
        db: flags
            .db
            .clone()
            .unwrap_or_else(|| crate::db::default_db_path(home)),
        policy: crate::assess::Policy {
            health_threshold: flags
                .health_threshold
                .unwrap_or(config.policy.health_threshold),
            severities: flags.severity.clone(),
            ignore_unfixed: flags.ignore_unfixed,
            suppressions,
        },
        require_db: flags.fail_on.is_some(),
    }))
}

async fn list(
    home: &Home,
    config: &Config,
    format: ListFormat,
    flags: &AnalyzerFlags,
) -> Result<ExitCode> {
    let sandbox = Sandbox::new(&home.components(), config.sandbox.clone())?;
    let registry = Registry::load(&sandbox, &sources(home, config, flags)).await?;
    let listing = registry.listing();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        ListFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &listing)?;
            writeln!(out)?;
        }
        ListFormat::Table => {
            for a in &listing {
                writeln!(
                    out,
                    "{} {} (wit {}, {})",
                    a.name, a.version, a.wit_version, a.ecosystem
                )?;
                writeln!(out, "  origin: {}", a.origin)?;
                writeln!(out, "  sha256: {}", a.sha256)?;
                for r in &a.requests {
                    writeln!(
                        out,
                        "  wants:  {:<6} {} (≤ {} bytes)",
                        r.kind, r.pattern, r.max_size
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
