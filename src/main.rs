//! The `ragd` binary: parses the command line, installs logging, runs the command.

use std::process::ExitCode;

use clap::Parser;

// mimalloc keeps freed pages for reuse: the encoder allocates and frees tens of MB per batch,
// and with the system allocator every such buffer was a fresh mmap plus page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = ragd::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAGD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.global.log_level.as_str()));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.global.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    match ragd::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`ragd models list | head -1`) would
/// panic; restore the default so the process ends quietly, as other Unix tools do.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
