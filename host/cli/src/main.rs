//! The `bulkhead` command.

use std::process::ExitCode;

mod cli;
mod db;
mod progress;
mod serve;

fn main() -> ExitCode {
    cli::main()
}
