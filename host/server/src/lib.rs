//! `bulkhead serve`: scan images as they are pushed (docs/service.md, the user's guide;
//! docs/service-design.md, the contract).
//!
//! | part | module |
//! |---|---|
//! | the configuration file | [`config`] |
//! | registry notifications in, jobs out | [`webhook`] |
//! | asking a registry what a tag or digest is | [`registry`] |
//! | claim, scan, record | [`worker`] |
//! | problem notifications to the tenants' webhooks | [`notify`] |
//! | matching stored inventories again when the advisory database changes | [`rescan`] |
//! | listing the registries for pushes whose notification was lost | [`reconcile`] |
//! | the REST API, auth, OpenAPI | [`api`] |
//! | HTTP connections: timeouts, connection and request caps | [`listen`] |
//! | per-tenant limits: queries at once, rates | [`limits`] |
//! | Prometheus metrics | [`metrics`] |
//!
//! The durable state (queue, results, tenants, tokens) is the `bulkhead-store` crate; this
//! module holds no state of its own that a restart would lose.

pub mod api;
pub mod config;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod reconcile;
pub mod registry;
pub mod rescan;
pub mod webhook;
pub mod worker;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bulkhead_store::{Role, Store, TenantSpec, now_ms};
use tokio::sync::{Notify, watch};

use self::config::{ServeConfig, StoreConfig};
use bulkhead_scan::home::Home;
use bulkhead_scan::pipeline::{Pipeline, PipelineSpec};

/// How long in-flight scans may finish after SIGTERM / ctrl-c before they are given back
/// to the queue.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What `bulkhead serve` is asked to do (the command line's words are the CLI's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the service until SIGTERM or ctrl-c.
    Serve,
    /// Create a token bound to one tenant and one role (a role word); print its secret.
    CreateToken {
        tenant: String,
        role: String,
        name: String,
    },
    /// Revoke a token by id.
    RevokeToken { id: i64 },
    /// List tokens (never their secrets), of one tenant or all.
    ListTokens { tenant: Option<String> },
}

/// Run `bulkhead serve …` with the configuration file `config`.
pub fn run(action: Action, config: Option<&Path>, home: &Home) -> Result<ExitCode> {
    let Some(path) = config else {
        bail!(
            "bulkhead serve needs --config FILE (the service configuration, see docs/service.md)"
        );
    };
    let config = ServeConfig::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bulkhead-serve")
        .build()
        .context("cannot start the async runtime")?;
    match action {
        Action::Serve => runtime.block_on(serve(config, home))?,
        token_action => runtime.block_on(token(token_action, &config))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Open the configured store and apply its migrations.
pub async fn open_store(config: &ServeConfig) -> Result<Store> {
    let (store_config, what) = match &config.store {
        // The store creates its directory (0700) and files (0600) itself.
        StoreConfig::Sqlite { path } => (
            bulkhead_store::StoreConfig::Sqlite { path: path.clone() },
            format!("SQLite store {}", path.display()),
        ),
        StoreConfig::Postgres { url } => (
            bulkhead_store::StoreConfig::Postgres {
                url: url.expose().to_string(),
            },
            // The URL may hold a password: never in a message.
            "PostgreSQL store".to_string(),
        ),
    };
    Store::open(store_config)
        .await
        .with_context(|| format!("cannot open the {what} (config {})", config.file.display()))
}

/// Make the store's tenants, ownership and notification targets those of the config.
pub async fn sync_tenants(
    store: &Store,
    config: &ServeConfig,
) -> Result<(), bulkhead_store::Error> {
    let specs: Vec<TenantSpec> = config
        .tenants
        .iter()
        .map(|t| TenantSpec {
            name: t.name.clone(),
            ownership: t
                .owns
                .iter()
                .map(|o| (o.registry.clone(), o.prefix.clone()))
                .collect(),
            notify: t.notify.as_ref().map(|n| {
                (
                    n.url.clone(),
                    n.secret
                        .as_ref()
                        .map(|s| s.expose().to_string())
                        .unwrap_or_default(),
                )
            }),
        })
        .collect();
    store.sync_tenants(&specs, now_ms()).await
}

/// The service: store, workers and HTTP server, until SIGTERM or ctrl-c.
pub async fn serve(config: ServeConfig, home: &Home) -> Result<()> {
    let store = open_store(&config).await?;
    sync_tenants(&store, &config)
        .await
        .context("cannot write the configured tenants to the store")?;
    for t in &config.tenants {
        if t.notify.as_ref().is_some_and(|n| n.secret.is_none()) {
            tracing::warn!(
                "tenant {} has a notify_url but no notify_secret: its notifications are sent unsigned",
                t.name
            );
        }
    }
    for r in &config.registries {
        let scoped = config.tenants.iter().any(|t| {
            t.owns.iter().any(|o| {
                o.registry == r.name && (o.webhook_secret.is_some() || t.webhook_secret.is_some())
            })
        });
        if r.webhook_secret.is_none() && !scoped {
            tracing::warn!(
                "registry {} has no webhook secret: its notifications will be refused",
                r.name
            );
        }
    }

    // The sandbox (compiled analyzers) and the analyzers are loaded once and shared by
    // every worker, as one CLI scan would.
    let db_path = config
        .scan
        .db
        .clone()
        .unwrap_or_else(|| bulkhead_scan::db::default_db_path(home));
    if !db_path.is_file() {
        tracing::warn!(
            "no advisory database at {}: scans wait (and /readyz says not ready) until one is imported",
            db_path.display()
        );
    }
    let pipeline = Pipeline::build(
        home,
        PipelineSpec {
            sandbox: config.scan.sandbox.clone(),
            analyzers: bulkhead_scan::analyzers::Sources {
                confine: config.scan.analyzers.confine_third_party,
                ..PipelineSpec::sources(home, true, Vec::new(), &config.scan.analyzers.dirs)
            },
            extract: config.scan.extract.clone(),
            layers: config.scan.layers.clone(),
            cache_max_bytes: Some(config.scan.cache.max_bytes),
            parallel_layers: config.scan.parallel_layers,
            resolve: bulkhead_scan::source::ResolveOptions {
                registry: config.scan.registry_limits.clone(),
                ..Default::default()
            },
            assess: Some(bulkhead_scan::assess::AssessOptions {
                db: db_path.clone(),
                policy: bulkhead_scan::assess::Policy {
                    health_threshold: config.scan.health_threshold,
                    ..Default::default()
                },
                require_db: true,
            }),
            progress: None,
        },
    )
    .await?;
    let assess = pipeline
        .options
        .assess
        .clone()
        .context("the service's pipeline always assesses")?;

    let config = Arc::new(config);
    let metrics = Arc::new(metrics::Metrics::new());
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_rx_metrics = stop_rx.clone();
    let workers = worker::Workers {
        store: store.clone(),
        config: config.clone(),
        scan: Arc::new(pipeline),
        metrics: metrics.clone(),
        wake: wake.clone(),
        shutdown: stop_rx.clone(),
        grace: SHUTDOWN_GRACE,
    };
    // Notifications and rescans share the workers' store, metrics and shutdown signal;
    // the rescan matches with the workers' database and policy.
    let notifier = notify::Notifier {
        store: store.clone(),
        config: config.notifications.clone(),
        poll: config.server.poll(),
        metrics: metrics.clone(),
        shutdown: stop_rx.clone(),
    };
    let rescanner = rescan::Rescanner {
        store: store.clone(),
        options: assess,
        metrics: metrics.clone(),
        poll: config.scan.rescan_poll,
        shutdown: stop_rx.clone(),
    };
    let reconciler = reconcile::Reconciler {
        store: store.clone(),
        config: config.clone(),
        wake: wake.clone(),
        shutdown: stop_rx,
    };
    let state = api::AppState {
        store,
        config: config.clone(),
        metrics,
        wake,
        db_path,
        limits: Arc::new(limits::Limits::new(&config)),
    };

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener
        .local_addr()
        .context("the listener has no address")?;
    let metrics_listener = match config.server.metrics_listen {
        Some(m) => Some(
            tokio::net::TcpListener::bind(m)
                .await
                .with_context(|| format!("cannot listen on {m} (server.metrics_listen)"))?,
        ),
        None => None,
    };
    let mut handles = workers.spawn(config.server.workers);
    handles.push(notifier.spawn()?);
    handles.push(rescanner.spawn());
    handles.extend(reconciler.spawn());
    // On stderr whatever the log level: scripts and tests started with port 0 read the
    // address from this line.
    eprintln!("bulkhead serve: listening on http://{addr}");
    if let Some(m) = metrics_listener {
        let metrics_addr = m
            .local_addr()
            .context("the metrics listener has no address")?;
        eprintln!("bulkhead serve: metrics on http://{metrics_addr}/metrics");
        let mut stop = stop_rx_metrics;
        let router = api::metrics_router(state.clone());
        handles.push(tokio::spawn(async move {
            let served = axum::serve(m, router).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = served.await {
                tracing::error!("the metrics server failed: {e}");
            }
        }));
    }
    let _ = std::io::stderr().flush();

    let limits = listen::HttpLimits::of(&config.server);
    listen::serve(
        listener,
        listen::limited(api::router(state), limits),
        limits,
        async move {
            shutdown_signal().await;
            eprintln!("bulkhead serve: stopping");
            let _ = stop_tx.send(true);
        },
    )
    .await;
    // The workers saw the signal too: they finish (or give back) their jobs; the notifier
    // ends its attempts in flight, the rescan stops between batches.
    for h in handles {
        let _ = h.await;
    }
    Ok(())
}

/// SIGTERM or ctrl-c (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn token(action: Action, config: &ServeConfig) -> Result<()> {
    let store = open_store(config).await?;
    // A token for a tenant that the configuration names but the service never started
    // with must work at once.
    sync_tenants(&store, config)
        .await
        .context("cannot write the configured tenants to the store")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match action {
        Action::Serve => {}
        Action::CreateToken { tenant, role, name } => {
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            if !config.tenants.iter().any(|t| t.name == tenant) {
                bail!(
                    "--tenant {tenant:?}: no [[tenants]] of that name in {}",
                    config.file.display()
                );
            }
            let created = store
                .create_token(&tenant, role, &name, now_ms())
                .await
                .with_context(|| format!("cannot create a token for tenant {tenant}"))?;
            eprintln!(
                "created token {} ({role}) for tenant {tenant}; the secret is shown once:",
                created.id
            );
            writeln!(out, "{}", created.secret)?;
        }
        Action::RevokeToken { id } => {
            if store.revoke_token(None, id, now_ms()).await? {
                eprintln!("revoked token {id}");
            } else {
                bail!("no unrevoked token with id {id}");
            }
        }
        Action::ListTokens { tenant } => {
            let tenants = store.tenants().await?;
            writeln!(out, "ID\tTENANT\tROLE\tNAME\tCREATED\tLAST USED\tREVOKED")?;
            for t in tenants
                .iter()
                .filter(|t| tenant.as_ref().is_none_or(|n| *n == t.name))
            {
                for tok in store.tokens(t.id).await? {
                    let when = |ms: Option<i64>| {
                        ms.map(bulkhead_store::rfc3339)
                            .unwrap_or_else(|| "-".into())
                    };
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        tok.id,
                        t.name,
                        tok.role,
                        bulkhead_scan::text::sanitize(&tok.name),
                        bulkhead_store::rfc3339(tok.created_at),
                        when(tok.last_used_at),
                        when(tok.revoked_at)
                    )?;
                }
            }
        }
    }
    Ok(())
}
