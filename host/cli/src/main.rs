//! The `bulkhead` command.

use std::process::ExitCode;

mod cli;
mod db;
mod hints;
mod progress;
mod serve;
mod version;

fn main() -> ExitCode {
    cli::main()
}
