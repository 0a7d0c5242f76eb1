//! The `bulkhead` command.

use std::process::ExitCode;

mod cli;
mod db;
mod progress;

fn main() -> ExitCode {
    cli::main()
}
