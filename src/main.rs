//! The `bramble` binary: parse the command line, set up output, run, map to an exit code.

use std::io::IsTerminal;

use clap::Parser;

use bramble::cli::{Cli, Command, LabCommand};
use bramble::error::Error;
use bramble::executor::{self, exit};
use bramble::image;

fn main() {
    let cli = Cli::parse();
    let code =
        match &cli.command {
            Command::Run(arguments) => {
                setup_tracing(arguments.verbose);
                match arguments.options() {
                    Ok(options) => run(options),
                    Err(error) => report(&error),
                }
            }
            Command::Bake(arguments) => {
                setup_tracing(arguments.verbose);
                match arguments.options() {
                    Ok(options) => block_on(async move {
                        image::until_interrupted(image::bake::bake(&options)).await.map(drop)
                    }),
                    Err(error) => report(&error),
                }
            }
            Command::Burn(arguments) if arguments.list => {
                list_removable_disks();
                exit::OK
            }
            Command::Burn(arguments) => {
                setup_tracing(arguments.verbose);
                match arguments.options() {
                    Ok(options) => block_on(async move {
                        image::until_interrupted(image::burn::burn(&options)).await
                    }),
                    Err(error) => report(&error),
                }
            }
            Command::Lab(command) => lab(command),
        };
    std::process::exit(code);
}

/// `bramble lab up|status|down`: status on stderr, where things are on stdout.
fn lab(command: &LabCommand) -> i32 {
    use bramble::lab::fleet;
    match command {
        LabCommand::Up(arguments) => {
            setup_tracing(arguments.verbose);
            let options = arguments.options();
            block_on(async move { fleet::up(&options).await })
        }
        LabCommand::Status => {
            bramble::output::out(&fleet::status_table(&fleet::status(&fleet::fleet_dir())));
            exit::OK
        }
        LabCommand::Down => {
            setup_tracing(0);
            block_on(async move {
                for name in fleet::stop_all(&fleet::fleet_dir()).await? {
                    bramble::output::err(&format!("{:>12} {name}\n", "stopped"));
                }
                Ok(())
            })
        }
    }
}

/// `bramble burn --list`: data on stdout, one disk a line.
fn list_removable_disks() {
    let devices = image::target::removable_devices();
    if devices.is_empty() {
        // stdout stays empty for scripts; a person still learns why nothing is listed.
        bramble::output::err(
            "no removable disk found (SD card readers and USB disks are listed here)\n",
        );
    }
    for device in devices {
        let size = image::host::human_size(device.bytes);
        bramble::output::out(&format!("{}\t{size}\t{}\n", device.path.display(), device.model));
    }
}

/// Runs an image command to completion: 0, or the error reported.
fn block_on(work: impl std::future::Future<Output = Result<(), Error>>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            bramble::output::err(&format!("[ERROR]: could not start the async runtime: {error}\n"));
            return exit::ERROR;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => exit::OK,
        Err(error) => report(&error),
    }
}

fn run(options: executor::Options) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            bramble::output::err(&format!("[ERROR]: could not start the async runtime: {error}\n"));
            return exit::ERROR;
        }
    };
    match runtime.block_on(executor::run(options)) {
        Ok(code) => code,
        Err(error) => report(&error),
    }
}

/// Prints an error as ansible-playbook does (`[ERROR]:` and the offending lines) and picks
/// its exit code: 4 for bad playbook or inventory input, 1 otherwise.
fn report(error: &Error) -> i32 {
    bramble::output::err(&format!("{}\n", bramble::output::format_error(error)));
    match error {
        Error::YamlSyntax { .. }
        | Error::PlaybookInvalid { .. }
        | Error::InventoryInvalid { .. } => exit::PARSER_ERROR,
        Error::ArgumentInvalid { .. } => exit::OPTIONS_ERROR,
        Error::Interrupted => exit::INTERRUPTED,
        _ => exit::ERROR,
    }
}

/// Developer diagnostics go through tracing: `RUST_LOG`, or `-vvvv` for debug.
fn setup_tracing(verbosity: u8) {
    let default = if verbosity >= 4 { "bramble=debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .without_time()
        .init();
}
