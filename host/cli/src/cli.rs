//! The command line. Exit codes: 0 the scan succeeded (findings or not), 1 a finding is
//! at or above `--fail-on` (or, with `--fail-on`, the image's health is `unknown`: part
//! of it could not be assessed; `--allow-unassessed` accepts that), 2 error, 3 the scan
//! ran but is incomplete (an analyzer failed or was stopped; the report says which).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use bulkhead_model::{Named, Severity};
use bulkhead_scan::analyzers::{Registry, Sources};
use bulkhead_scan::config::Config;
use bulkhead_scan::home::Home;
use bulkhead_scan::pipeline::{DEFAULT_PARALLEL_LAYERS, Pipeline, PipelineSpec};
use bulkhead_scan::report::{Format, TableStyle};
use bulkhead_scan::sandbox::Sandbox;
use bulkhead_scan::source::auth::Credential;
use bulkhead_scan::source::{Recognised, ResolveOptions, Source};

use crate::progress;

/// A flag whose values are the words of a [`Named`] type (`--format`, `--severity`): the
/// words are defined once, by the type.
pub(crate) fn choice<T: Named + Send + Sync>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(T::ALL.iter().map(|v| v.name()))
        .try_map(|word: String| T::from_name(&word).ok_or("not one of the possible values"))
}

/// Exit code of a scan that ran but could not analyse everything.
pub(crate) const EXIT_INCOMPLETE: u8 = 3;
/// Exit code of an error.
pub(crate) const EXIT_ERROR: u8 = 2;
/// Exit code of a scan with a finding at or above `--fail-on`.
pub(crate) const EXIT_FINDINGS: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "Scan container images for vulnerable packages; analyzers run sandboxed in WebAssembly."
)]
pub(crate) struct Cli {
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
    Serve(crate::serve::ServeArgs),
    /// Query the scan service's results (docs/query.md): through a running service
    /// (`--server URL --token TOKEN`) or straight from its store (`--store-config FILE
    /// --tenant NAME`). Exit code 2 on an error, shown with a caret under its place.
    Query(QueryArgs),
    /// Print shell completions to stdout, e.g. `bulkhead completions bash >
    /// /etc/bash_completion.d/bulkhead` (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout: `bulkhead man > bulkhead.1; man ./bulkhead.1`.
    Man,
    /// Print this installation's versions for a support request: bulkhead, wasmtime, the
    /// analyzer WIT versions, the analyzers a scan would run with their digests, and the
    /// advisory database's status (`--format json` for the whole of it).
    Version {
        #[arg(long, short, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        #[command(flatten)]
        analyzers: AnalyzerFlags,
        #[command(flatten)]
        db: crate::db::DbFlag,
    },
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
    /// Restrict third-party analyzers to ecosystems and paths no built-in analyzer covers
    /// (also analyzers.confine_third_party in the configuration).
    #[arg(long)]
    confine_analyzers: bool,
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// What to scan: NAME[:TAG|@DIGEST] (a registry; alpine:3.19 = docker.io/library/alpine:3.19;
    /// also registry:NAME, docker:NAME), oci:DIR[:TAG] (or oci-dir:), docker-archive:FILE or
    /// dir:PATH (or fs:); an existing file or directory without a scheme is recognised.
    #[arg(value_name = "IMAGE")]
    source: String,
    /// Platform to select from a multi-platform image (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Registry reached over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// A host besides the registry's own that may receive its credentials as the token
    /// realm of a Bearer challenge (repeatable; HOST for any port, or HOST:PORT).
    #[arg(long = "token-host", value_name = "HOST[:PORT]")]
    token_hosts: Vec<String>,
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
    #[arg(long, short, value_parser = choice::<Format>(), default_value = "table")]
    format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The Jinja template of --format template: its variables are the JSON report's fields
    /// (examples in contrib/templates/; docs/reports.md).
    #[arg(long, value_name = "FILE")]
    template: Option<PathBuf>,
    /// In the table, one row per package and vulnerability instead of one block per upgrade.
    #[arg(long)]
    expand: bool,
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
    #[arg(long, value_parser = choice::<Severity>(), value_delimiter = ',', value_name = "LIST")]
    severity: Vec<Severity>,
    /// Leave out findings that have no fixed version yet.
    #[arg(long)]
    ignore_unfixed: bool,
    /// Exit with 1 when a reported finding is at or above this severity, or when the
    /// image could not be fully assessed (health `unknown`; see --allow-unassessed).
    #[arg(long, value_parser = choice::<Severity>(), value_name = "SEVERITY")]
    fail_on: Option<Severity>,
    /// With --fail-on: pass an image whose health is `unknown` (a release or package type
    /// no advisory data covers, OS packages without a recognised OS) when nothing that was
    /// assessed fails. An incomplete scan still exits with 3.
    #[arg(long, requires = "fail_on")]
    allow_unassessed: bool,
    /// A finding at or above this severity makes the image unhealthy (overrides
    /// policy.health_threshold; default high).
    #[arg(long, value_parser = choice::<Severity>(), value_name = "SEVERITY")]
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
pub(crate) enum ListFormat {
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
pub(crate) fn main() -> ExitCode {
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
            if let Some(hint) = crate::hints::next_step(&e) {
                eprintln!("hint: {hint}");
            }
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
    match &cli.command {
        // Generated from the definitions above: nothing to read, no home to create.
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "bulkhead", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .context("cannot write the manual page to stdout")?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let home = Home::resolve(cli.home.as_deref())?;
    // `serve`'s --config is the service configuration, not the scanner's config.toml.
    let command = match cli.command {
        Command::Serve(args) => {
            return bulkhead_server::run(args.action(), cli.config.as_deref(), &home);
        }
        Command::Query(args) => return query(args),
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
        Command::Version {
            format,
            analyzers,
            db,
        } => {
            let listing = runtime.block_on(listing(&home, &config, &analyzers))?;
            let stdout = std::io::stdout();
            crate::version::print(&db.path(&home), &listing, format, &mut stdout.lock())
        }
        Command::Db(cmd) => {
            let stdout = std::io::stdout();
            runtime.block_on(crate::db::run(cmd, &home, &config.db, &mut stdout.lock()))
        }
        // Handled above, before the scanner's config is read.
        Command::Serve(args) => bulkhead_server::run(args.action(), cli.config.as_deref(), &home),
        Command::Query(args) => query(args),
        // Printed at the start of `run`, before any home or configuration is read.
        Command::Completions { .. } | Command::Man => Ok(ExitCode::SUCCESS),
    }
}

fn sources(home: &Home, config: &Config, flags: &AnalyzerFlags) -> Sources {
    let mut dirs = config.analyzers.dirs.clone();
    dirs.extend(flags.analyzer_dirs.iter().cloned());
    Sources {
        confine: config.analyzers.confine_third_party || flags.confine_analyzers,
        ..PipelineSpec::sources(
            home,
            !flags.no_builtin_analyzers,
            flags.analyzers.clone(),
            &dirs,
        )
    }
}

async fn scan(home: &Home, config: &Config, args: ScanArgs, quiet: bool) -> Result<ExitCode> {
    // Before any image is pulled: a template with a typo should cost no scan.
    let template = match (&args.template, args.format) {
        (Some(path), Format::Template) => Some(bulkhead_scan::report::Template::load(path)?),
        (None, Format::Template) => anyhow::bail!(
            "--format template needs --template FILE: a Jinja template over the JSON report (examples in contrib/templates/, variables in docs/reports.md)"
        ),
        (Some(_), other) => anyhow::bail!(
            "--template is used with --format template only (the format here is {}); add --format template",
            other.name()
        ),
        (None, _) => None,
    };
    let (source, how) = Source::recognise(&args.source).map_err(anyhow::Error::msg)?;
    // Say what a bare path was taken for: `img/debian.tar` is a file here, not
    // `docker.io/img/debian.tar`, and the user should see which.
    if how == Recognised::FromPath && !quiet {
        match &source {
            Source::Archive(_) => eprintln!(
                "scanning {source} (recognised from the path: a `docker save` or OCI archive, \
                 read as what it holds)"
            ),
            _ => eprintln!("scanning {source} (recognised from the path)"),
        }
    }
    let mut resolve = ResolveOptions::default();
    if let Some(p) = &args.platform {
        resolve.platform = p.parse().map_err(anyhow::Error::msg)?;
    }
    resolve.insecure_registries = config.registries.insecure.clone();
    resolve
        .insecure_registries
        .extend(args.insecure_registries.iter().cloned());
    resolve.token_hosts = config.registries.token_hosts.clone();
    resolve.registry = config.registries.limits.clone();
    // As docker does: without explicit credentials, the user's own credential stores.
    resolve.credential_stores = true;
    if !args.token_hosts.is_empty()
        && let Source::Registry(r) = &source
    {
        let registry = bulkhead_scan::source::registry::parse_reference(r)?
            .registry()
            .to_string();
        resolve
            .token_hosts
            .entry(registry)
            .or_default()
            .extend(args.token_hosts.iter().cloned());
    }
    if let (Some(username), Some(password)) = (&args.username, &args.password) {
        resolve.credentials = Some(Credential::Basic {
            username: username.clone(),
            password: password.clone(),
        });
    }
    let cache_max_bytes = if args.no_cache {
        None
    } else {
        Some(match &args.cache_max_size {
            Some(s) => bulkhead_scan::layers::cache::parse_size(s).map_err(anyhow::Error::msg)?,
            None => config.cache.max_bytes,
        })
    };
    let spec = PipelineSpec {
        sandbox: config.sandbox.clone(),
        analyzers: sources(home, config, &args.analyzers),
        extract: config.extract.clone(),
        layers: config.layers.clone(),
        cache_max_bytes,
        parallel_layers: DEFAULT_PARALLEL_LAYERS,
        resolve,
        assess: assess_options(home, config, &args.findings)?,
        progress: (!quiet).then(progress::Bar::on_terminal).flatten(),
    };
    let pipeline = Pipeline::build(home, spec).await?;
    let result = pipeline.scan(&source).await?;
    tracing::info!(
        total_ms = result.stats.duration_ms,
        layers = result.stats.layers,
        downloaded = result.stats.layers_downloaded,
        cached = result.stats.layers_from_cache,
        "scanned {}",
        result.reference
    );
    let report = result.report();
    let mut style = TableStyle {
        colour: false,
        all_packages: args.findings.all_packages,
        expand: args.expand,
    };
    match &args.output {
        Some(path) => {
            let mut buf = Vec::new();
            bulkhead_scan::report::write(&report, args.format, style, template.as_ref(), &mut buf)?;
            std::fs::write(path, buf)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            style.colour =
                std::io::IsTerminal::is_terminal(&stdout) && std::env::var_os("NO_COLOR").is_none();
            let mut out = stdout.lock();
            bulkhead_scan::report::write(&report, args.format, style, template.as_ref(), &mut out)?;
            out.flush()?;
        }
    }
    // The table ends with this line; the other formats are for machines, so a CI log
    // still gets the one line a person reads there.
    if args.format != Format::Table && !quiet {
        eprintln!(
            "{}",
            bulkhead_scan::text::sanitize(&bulkhead_scan::report::summary_line(&report))
        );
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
                bulkhead_scan::text::sanitize(&result.reference)
            );
            return Ok(ExitCode::from(EXIT_FINDINGS));
        }
    }
    // A gate must not pass an image nobody could check; an incomplete scan is said below,
    // with its own exit code.
    if let (Some(fail_on), Some(assessment)) = (args.findings.fail_on, &result.assessment)
        && assessment.health == bulkhead_model::Health::Unknown
        && result.complete()
        && !args.findings.allow_unassessed
    {
        eprintln!(
            "{} could not be fully assessed (health unknown; the diagnostics say what was not checked): --fail-on {fail_on} does not pass it; add --allow-unassessed to accept that",
            bulkhead_scan::text::sanitize(&result.reference)
        );
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    if !result.complete() {
        for d in result
            .diagnostics
            .iter()
            .filter(|d| d.level == bulkhead_model::Level::Error)
        {
            eprintln!("error: {}", bulkhead_scan::text::sanitize(&d.message));
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
) -> Result<Option<bulkhead_scan::assess::AssessOptions>> {
    if flags.inventory_only {
        return Ok(None);
    }
    let mut suppressions = bulkhead_scan::assess::Suppressions::default();
    let default_ignore = PathBuf::from(".bulkheadignore");
    match &flags.ignore_file {
        Some(path) => suppressions.load_ignore_file(path)?,
        None if default_ignore.is_file() => suppressions.load_ignore_file(&default_ignore)?,
        None => {}
    }
    for vex in &flags.vex {
        suppressions.load_vex(vex)?;
    }
    Ok(Some(bulkhead_scan::assess::AssessOptions {
        db: flags
            .db
            .clone()
            .unwrap_or_else(|| bulkhead_scan::db::default_db_path(home)),
        policy: bulkhead_scan::assess::Policy {
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

/// The analyzers a scan with these flags would run.
async fn listing(
    home: &Home,
    config: &Config,
    flags: &AnalyzerFlags,
) -> Result<Vec<bulkhead_scan::analyzers::Listing>> {
    let sandbox = Sandbox::new(&home.components(), config.sandbox.clone())?;
    let registry = Registry::load(&sandbox, &sources(home, config, flags)).await?;
    Ok(registry.listing())
}

async fn list(
    home: &Home,
    config: &Config,
    format: ListFormat,
    flags: &AnalyzerFlags,
) -> Result<ExitCode> {
    let listing = listing(home, config, flags).await?;
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

// ---- bulkhead query ----------------------------------------------------------------------

#[derive(Debug, Args)]
struct QueryArgs {
    /// The query (docs/query.md), e.g.
    /// "Findings | where Severity == 'critical' | summarize count() by Repository".
    #[arg(value_name = "QUERY")]
    query: String,
    /// Output format.
    #[arg(long, short, value_parser = choice::<bulkhead_server::api::QueryFormat>(), default_value = "table")]
    format: bulkhead_server::api::QueryFormat,
    /// The running service to ask, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "BULKHEAD_SERVER", value_name = "URL")]
    server: Option<String>,
    /// An API token of the service (reader or above); it decides the tenant.
    #[arg(
        long,
        env = "BULKHEAD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Query the store of this service configuration (the file `bulkhead serve --config`
    /// reads) directly, instead of a running service. Needs --tenant.
    #[arg(long, value_name = "FILE", requires = "tenant")]
    store_config: Option<PathBuf>,
    /// With --store-config: the tenant (a `[[tenants]]` name) whose results to query.
    #[arg(long, value_name = "NAME", requires = "store_config")]
    tenant: Option<String>,
}

/// `bulkhead query`: the result on stdout; a query error with its caret rendering on
/// stderr and exit code 2.
fn query(args: QueryArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // --store-config wins over a BULKHEAD_SERVER set in the environment.
    let answer = match (&args.store_config, &args.tenant) {
        (Some(path), Some(tenant)) => {
            runtime.block_on(query_store(path, tenant, &args.query, args.format))?
        }
        (Some(_), None) => anyhow::bail!("--store-config needs --tenant NAME"),
        (None, _) => {
            let server = args.server.as_deref().context(
                "give --server URL (or BULKHEAD_SERVER) and --token, or --store-config FILE \
                 and --tenant NAME",
            )?;
            let token = args
                .token
                .as_deref()
                .context("--server needs --token TOKEN (or BULKHEAD_TOKEN)")?;
            runtime.block_on(query_server(server, token, &args.query, args.format))?
        }
    };
    match answer {
        Ok(mut text) => {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(rendered) => {
            eprint!("{}", terminal_safe(&rendered));
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

/// Runs the query against the store of the service configuration `path`, as `tenant`,
/// with the configuration's `[query]` limits. `Ok(Err(rendering))` for an error in the
/// query or a cost guard.
async fn query_store(
    path: &std::path::Path,
    tenant: &str,
    text: &str,
    format: bulkhead_server::api::QueryFormat,
) -> Result<Result<String, String>> {
    use bulkhead_server::api::{self, QueryFailure};
    let config = bulkhead_server::config::ServeConfig::load(path)?;
    let store = bulkhead_server::open_store(&config).await?;
    let found = store
        .tenant_by_name(tenant)
        .await
        .context("cannot read the store's tenants")?
        .with_context(|| {
            format!(
                "no tenant {tenant:?} in the store of {} (tenants are the configuration's \
                 [[tenants]], written to the store when `bulkhead serve` starts)",
                path.display()
            )
        })?;
    match api::run_query(
        &store,
        found.id,
        text,
        &config.query,
        bulkhead_store::now_ms(),
        std::time::Instant::now(),
    )
    .await
    {
        Ok(rows) => Ok(Ok(api::format_query_result(&rows, format))),
        // The store is the operator's own: its message is theirs to see.
        Err(QueryFailure::Store(e)) => {
            Err(anyhow::Error::new(e).context("the query failed in the store"))
        }
        Err(f) => Ok(Err(f.render(text))),
    }
}

/// Longest the service may take to answer (its own query timeout is shorter).
const QUERY_HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Posts the query to `server`'s `/v1/query`; the body of a 200 is the result in `format`.
/// `Ok(Err(rendering))` for an error the service explains (a query error's caret
/// rendering when it has one).
async fn query_server(
    server: &str,
    token: &str,
    text: &str,
    format: bulkhead_server::api::QueryFormat,
) -> Result<Result<String, String>> {
    let url = format!("{}/v1/query", server.trim_end_matches('/'));
    // reqwest is built without a crypto provider of its own (see db update).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(QUERY_HTTP_TIMEOUT)
        .build()
        .context("cannot create the HTTP client")?;
    let body = serde_json::json!({"query": text, "format": format.as_str()});
    let resp = client
        .post(&url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .with_context(|| format!("cannot reach the service at {url}"))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .with_context(|| format!("{url}: reading the answer"))?;
    if status.is_success() {
        return Ok(Ok(String::from_utf8_lossy(&bytes).into_owned()));
    }
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let error = &answer["error"];
    if let Some(rendered) = error["rendered"].as_str() {
        return Ok(Err(rendered.to_string()));
    }
    let message = error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(500).collect());
    Ok(Err(format!("error: {url} answered {status}: {message}\n")))
}

/// What the service (or a query's text) says, fit for a terminal: line breaks kept, other
/// control characters (escape sequences) shown escaped.
fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
