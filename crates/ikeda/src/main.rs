//! ikeda: an IPsec gateway with a userspace ESP data plane.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod config;
mod daemon;
mod dataplane;
mod ike;
mod lab;

#[derive(Parser)]
#[command(name = "ikeda", version, about = "IPsec gateway with a userspace ESP data plane")]
struct Cli {
    /// Log filter (tracing syntax), e.g. `info`, `esp=debug,config=info`.
    #[arg(long, global = true, env = "IKEDA_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway daemon with a configuration file.
    Run {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Write data plane counters (JSON) to this file every second.
        #[arg(long)]
        stats_file: Option<PathBuf>,
    },
    /// Check a configuration file and exit.
    Check {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// The two-site lab in network namespaces.
    Lab {
        #[command(subcommand)]
        cmd: lab::LabCmd,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_target(true)
        .init();
    let code = match cli.cmd {
        Cmd::Run { config, stats_file } => daemon::run(daemon::RunOptions { config, stats_file }),
        Cmd::Check { config } => match config::Config::load(&config) {
            Ok(c) => {
                println!("{}: OK ({} connection(s))", config.display(), c.conns.len());
                0
            }
            Err(e) => {
                eprintln!("ikeda: configuration refused: {e}");
                2
            }
        },
        Cmd::Lab { cmd } => lab::main(cmd),
    };
    ExitCode::from(code as u8)
}
