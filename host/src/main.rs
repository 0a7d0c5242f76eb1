//! The `bulkhead` command.

use std::process::ExitCode;

fn main() -> ExitCode {
    bulkhead::cli::main()
}
