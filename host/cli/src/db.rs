//! `bulkhead db import|status|update`: the flags, and which library call each runs
//! (`bulkhead_scan::db`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bulkhead_scan::db::{self, DbConfig, FeedFormat, StatusFormat};
use bulkhead_scan::home::Home;
use clap::{Args, Subcommand};

use crate::cli::choice;

#[derive(Debug, Args)]
pub(crate) struct DbFlag {
    /// Advisory database file (default: $BULKHEAD_HOME/db/advisories.db).
    #[arg(long, env = "BULKHEAD_DB", value_name = "FILE")]
    db: Option<PathBuf>,
}

impl DbFlag {
    /// The database this flag names, else the home's.
    pub(crate) fn path(&self, home: &Home) -> PathBuf {
        self.db.clone().unwrap_or_else(|| db::default_db_path(home))
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Import advisory feeds from files, directories or OSV all.zip archives.
    ///
    /// The format of each PATH is told by its content. Each input becomes a source named
    /// after it (osv:<dir or zip>, alpine:<release>/<repo>, debian-tracker, debian-dsa,
    /// debian-dla, nvd, redhat-csaf); inputs with the same source name are imported
    /// together, and importing a source again replaces all its records.
    Import {
        /// Feed files, directories or all.zip archives.
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
        /// Read every PATH as this format instead of telling it from the content.
        #[arg(long, value_parser = choice::<FeedFormat>(), value_name = "FORMAT")]
        format: Option<FeedFormat>,
        /// Import every PATH as this one source instead of naming sources after the inputs.
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        #[command(flatten)]
        db: DbFlag,
    },
    /// Show each source in the database, its size and how old its data is.
    Status {
        #[arg(long, short, value_parser = choice::<StatusFormat>(), default_value = "table")]
        format: StatusFormat,
        #[command(flatten)]
        db: DbFlag,
    },
    /// Download the configured feeds ([db] in the configuration) and import them.
    ///
    /// Feeds that did not change since the last update (ETag / Last-Modified) are skipped.
    /// If any feed cannot be downloaded or imported, the database is left unchanged.
    Update {
        /// Update only this feed (repeatable), even if it is disabled.
        #[arg(long = "feed", value_name = "NAME")]
        feeds: Vec<String>,
        /// Print the feeds and the URLs they are fetched from, as configuration, and exit.
        #[arg(long)]
        list: bool,
        #[command(flatten)]
        db: DbFlag,
    },
}

pub(crate) async fn run(
    cmd: DbCommand,
    home: &Home,
    config: &DbConfig,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let db_path = |flag: &DbFlag| flag.path(home);
    match cmd {
        DbCommand::Import {
            paths,
            format,
            source,
            db,
        } => {
            let db = db_path(&db);
            let _lock = db::lock(&db)?;
            db::import_paths(&db, &paths, format, source.as_deref(), out)?;
        }
        DbCommand::Status { format, db } => db::status::run(&db_path(&db), format, out)?,
        DbCommand::Update { feeds, list, db } => {
            if list {
                db::update::list(config, out)?;
            } else {
                let db = db_path(&db);
                let _lock = db::lock(&db)?;
                db::update::run(&db, config, &feeds, out).await?;
            }
        }
    }
    out.flush().context("cannot write output")?;
    Ok(ExitCode::SUCCESS)
}
