//! The allow-list linker: the only host interfaces an analyzer can import.
//!
//! A component that imports anything else (sockets, HTTP, …) fails the import check at
//! load. `Linker::define_unknown_imports_as_traps` is deliberately not used: it is not
//! semver-aware and stubs the `@0.2.6` imports that Rust std emits even though wasmtime-wasi
//! provides `@0.2.12`, so every WASI call would trap.

use wasmtime::Engine;
use wasmtime::component::{HasData, Linker, ResourceTable};

use super::Ctx;

/// Import name prefixes an analyzer may use. The CLI interfaces are linked, but the
/// context gives them nothing: no arguments, no environment, empty stdin, discarded stdout.
pub(super) const ALLOWED_IMPORTS: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:random/",
    "wasi:cli/",
];

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

pub(super) fn allow_list(engine: &Engine) -> wasmtime::Result<Linker<Ctx>> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
    use wasmtime_wasi_io::bindings::wasi::io;

    let mut l = Linker::<Ctx>::new(engine);
    io::error::add_to_linker::<Ctx, HasIo>(&mut l, |c| &mut c.table)?;
    io::poll::add_to_linker::<Ctx, HasIo>(&mut l, |c| &mut c.table)?;
    io::streams::add_to_linker::<Ctx, HasIo>(&mut l, |c| &mut c.table)?;
    clocks::wall_clock::add_to_linker::<Ctx, WasiClocks>(&mut l, |c| c.clocks())?;
    clocks::monotonic_clock::add_to_linker::<Ctx, WasiClocks>(&mut l, |c| c.clocks())?;
    filesystem::types::add_to_linker::<Ctx, WasiFilesystem>(&mut l, |c| c.filesystem())?;
    filesystem::preopens::add_to_linker::<Ctx, WasiFilesystem>(&mut l, |c| c.filesystem())?;
    random::random::add_to_linker::<Ctx, WasiRandom>(&mut l, |c| c.random())?;
    random::insecure::add_to_linker::<Ctx, WasiRandom>(&mut l, |c| c.random())?;
    random::insecure_seed::add_to_linker::<Ctx, WasiRandom>(&mut l, |c| c.random())?;
    cli::exit::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    cli::environment::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    cli::stdin::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    cli::stdout::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    cli::stderr::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    cli::terminal_input::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    cli::terminal_output::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    cli::terminal_stdin::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    cli::terminal_stdout::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    cli::terminal_stderr::add_to_linker::<Ctx, WasiCli>(&mut l, |c| c.cli())?;
    Ok(l)
}
