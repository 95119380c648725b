//! ikeda: an IPsec gateway with a userspace ESP data plane.
//!
//! Exit codes: 0 done (for `status`: every connection is up); 1 the daemon
//! refused the request; 2 bad usage or configuration; 3 no daemon answers
//! on the control socket; 4 `status`: a connection is not up.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

mod audit;
mod config;
mod control;
mod daemon;
mod dataplane;
mod gateway;
mod ike;
mod install;
mod keys;
mod lab;
mod pathwatch;
mod pcap;
mod plan;
mod private;
mod seqstate;
mod show;

#[derive(Parser)]
#[command(name = "ikeda", version, about = "IPsec gateway with a userspace ESP data plane")]
struct Cli {
    /// Log filter per subsystem (ike, esp, config, control), tracing syntax:
    /// `info`, `ike=debug,esp=info`, `trace`. Default: the config's
    /// `[daemon] log`, else `info`. Key material is never logged.
    #[arg(long, global = true, env = "IKEDA_LOG")]
    log: Option<String>,
    /// The daemon's control socket: where status, show, up, down, reload and
    /// log connect, and where `run` listens (unless `--control` names
    /// another). Default: /run/ikeda/ikeda.sock, or for `run` the config's
    /// `[daemon] control_socket`.
    // No default_value: `run` must tell a socket the user named from none
    // (the config's control_socket applies then), or `ikeda --socket X run`
    // would listen elsewhere and `ikeda --socket X status` find no daemon.
    #[arg(long, global = true, env = "IKEDA_SOCKET")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShowWhat {
    /// IKE SAs: addresses, SPIs, role, state, algorithms, timers, NAT, DPD.
    Ike,
    /// CHILD SAs: SPIs, algorithms, selectors, traffic, drops, lifetimes.
    Child,
    /// The SPD in order, and the SA serving each entry.
    Policy,
    /// What the IKE engines counted: refused, dropped, answered (floods, forgeries).
    Counters,
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
        /// Control socket path (overrides `--socket` and `[daemon] control_socket`).
        #[arg(long)]
        control: Option<PathBuf>,
        /// Write every SA's keys, for Wireshark and ikeda's key log, into
        /// this directory (files 0600). Off by default.
        #[arg(long)]
        export_keys: Option<PathBuf>,
    },
    /// Check a configuration file and exit.
    Check {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// One line per connection: up, connecting, stalled, waiting or down, and why.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The SAs and policies of the running daemon.
    Show {
        what: ShowWhat,
        #[arg(long)]
        json: bool,
    },
    /// Initiate a connection.
    Up { conn: String },
    /// Delete a connection's IKE SA and its CHILD SAs; with `-c FILE` (the
    /// daemon stopped): remove the policy rules and unreachable routes that
    /// keep the remote selectors' traffic from leaving in clear.
    Down {
        /// The connection whose SAs the running daemon deletes.
        #[arg(required_unless_present = "config")]
        conn: Option<String>,
        /// The daemon is stopped: remove the rules and unreachable routes
        /// of this config's table (the explicit end of fail closed).
        #[arg(short = 'c', long = "config", conflicts_with = "conn")]
        config: Option<PathBuf>,
    },
    /// Rekey a connection's CHILD SA now (make-before-break), or with
    /// `--ike` its IKE SA (IKEv1: a new Main Mode replaces the phase-1 SA).
    Rekey {
        conn: String,
        #[arg(long)]
        ike: bool,
        /// IKEv2: rekey this `[[conn.child]]` (by name) instead of the
        /// connection's first CHILD SA.
        #[arg(long, conflicts_with = "ike")]
        child: Option<String>,
    },
    /// Re-read the configuration: changed connections are re-established,
    /// untouched ones keep their SAs.
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// The event stream: exchanges, SA installs, rekeys, failures.
    Log {
        /// Keep printing events as they happen.
        #[arg(short, long)]
        follow: bool,
        /// How many past events to print first.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
        #[arg(long)]
        json: bool,
    },
    /// Read a capture (pcap or pcapng): IKE messages in the notation of our
    /// logs, ESP as per-SA flows.
    Pcap(pcap::PcapArgs),
    /// Write a large ESP capture and its keys (the `bench/pcap.sh` benchmark).
    #[command(hide = true)]
    PcapGen(pcap::gen::GenArgs),
    /// Which IPsec flows the firewalls on the path admit (AWS security group
    /// or network ACL JSON, nft -j, iptables-save) and whether the tunnel
    /// works only by accident; exit 0 no, 1 yes (or undecided), 2 unreadable.
    Audit(audit::AuditArgs),
    /// The two-site lab in network namespaces.
    Lab {
        #[command(subcommand)]
        cmd: lab::LabCmd,
    },
}

fn init_logging(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_target(true)
        .init();
}

/// The socket a client command talks to: `--socket` (or IKEDA_SOCKET), else
/// the default.
fn client_socket(socket: Option<PathBuf>) -> PathBuf {
    socket.unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONTROL_SOCKET))
}

/// Print a control socket answer as a table or as JSON.
fn print_result<T: serde::de::DeserializeOwned>(v: serde_json::Value, json: bool, table: impl Fn(&T) -> String) -> i32 {
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    match serde_json::from_value::<T>(v) {
        Ok(x) => {
            print!("{}", table(&x));
            0
        }
        Err(e) => {
            eprintln!("ikeda: unexpected answer from the daemon: {e}");
            1
        }
    }
}

fn client_error(e: control::ClientError) -> i32 {
    eprintln!("ikeda: {e}");
    match e {
        control::ClientError::Unreachable(_) => 3,
        control::ClientError::Refused(_) => 1,
    }
}

fn client(socket: &std::path::Path, cmd: Cmd) -> i32 {
    use control::{request, Command};
    match cmd {
        Cmd::Status { json } => match request(socket, Command::Status) {
            Ok(v) => {
                let all_up = serde_json::from_value::<Vec<show::ConnStatus>>(v.clone())
                    .is_ok_and(|s| s.iter().all(|c| c.state == show::ConnState::Up));
                let code = print_result(v, json, |s: &Vec<show::ConnStatus>| show::status_table(s));
                if code == 0 && !all_up {
                    4
                } else {
                    code
                }
            }
            Err(e) => client_error(e),
        },
        Cmd::Show { what, json } => {
            let c = match what {
                ShowWhat::Ike => Command::ShowIke,
                ShowWhat::Child => Command::ShowChild,
                ShowWhat::Policy => Command::ShowPolicy,
                ShowWhat::Counters => Command::ShowCounters,
            };
            match request(socket, c) {
                Ok(v) => match what {
                    ShowWhat::Ike => {
                        let code = print_result(v, json, |s: &Vec<show::IkeSaOut>| show::ike_table(s));
                        // What the engines refused or dropped, under the
                        // SAs: a flood or a forger shows here first.
                        if code == 0 && !json {
                            if let Ok(c) = request(socket, Command::ShowCounters)
                                .map(serde_json::from_value::<Vec<show::CounterOut>>)
                            {
                                print!("{}", show::counters_footer(&c.unwrap_or_default()));
                            }
                        }
                        code
                    }
                    ShowWhat::Child => print_result(v, json, |s: &Vec<show::ChildSaOut>| show::child_table(s)),
                    ShowWhat::Policy => print_result(v, json, |s: &Vec<show::PolicyOut>| show::policy_table(s)),
                    ShowWhat::Counters => print_result(v, json, |s: &Vec<show::CounterOut>| show::counters_table(s)),
                },
                Err(e) => client_error(e),
            }
        }
        Cmd::Up { conn } => match request(socket, Command::Up { conn: conn.clone() }) {
            Ok(_) => {
                println!("{conn}: initiating (follow with `ikeda log -f`, check with `ikeda status`)");
                0
            }
            Err(e) => client_error(e),
        },
        Cmd::Down { conn: Some(conn), .. } => match request(socket, Command::Down { conn: conn.clone() }) {
            Ok(_) => {
                println!("{conn}: deleting its IKE SA");
                0
            }
            Err(e) => client_error(e),
        },
        Cmd::Rekey { conn, ike, child } => match request(
            socket,
            Command::Rekey {
                conn: conn.clone(),
                ike,
                child: child.clone(),
            },
        ) {
            Ok(_) => {
                println!(
                    "{conn}{}: rekeying its {} SA (follow with `ikeda log -f`)",
                    child.map_or(String::new(), |c| format!("/{c}")),
                    if ike { "IKE" } else { "CHILD" }
                );
                0
            }
            Err(e) => client_error(e),
        },
        Cmd::Reload { json } => match request(socket, Command::Reload) {
            Ok(v) => {
                if json {
                    println!("{v}");
                } else {
                    for k in ["added", "changed", "removed", "untouched"] {
                        let names: Vec<&str> = v[k]
                            .as_array()
                            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                            .unwrap_or_default();
                        println!("{k:9} {}", if names.is_empty() { "-".into() } else { names.join(" ") });
                    }
                }
                0
            }
            Err(e) => client_error(e),
        },
        Cmd::Log { follow, lines, json } => {
            let r = control::follow_log(socket, follow, lines, |e| {
                use std::io::Write;
                let line = if json {
                    serde_json::to_string(e).unwrap_or_default()
                } else {
                    let t = e.time_ms / 1000;
                    let (h, m, s) = ((t / 3600) % 24, (t / 60) % 60, t % 60);
                    format!(
                        "{h:02}:{m:02}:{s:02}.{:03} {:10} {}{}",
                        e.time_ms % 1000,
                        e.kind,
                        if e.conn.is_empty() {
                            String::new()
                        } else {
                            format!("{}: ", e.conn)
                        },
                        e.message
                    )
                };
                writeln!(std::io::stdout(), "{line}").is_ok()
            });
            match r {
                Ok(()) => 0,
                Err(e) => client_error(e),
            }
        }
        Cmd::Run { .. }
        | Cmd::Check { .. }
        | Cmd::Lab { .. }
        | Cmd::Down { conn: None, .. }
        | Cmd::Pcap(_)
        | Cmd::Audit(_)
        | Cmd::PcapGen(_) => 2,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let from_config = match &cli.cmd {
        Cmd::Run { config, .. } => config::Config::load(config).ok().and_then(|c| c.daemon.log),
        _ => None,
    };
    init_logging(cli.log.as_deref().or(from_config.as_deref()).unwrap_or("info"));
    let code = match cli.cmd {
        Cmd::Run {
            config,
            stats_file,
            control,
            export_keys,
        } => daemon::run(config::RunOptions {
            config,
            stats_file,
            control: control.or(cli.socket),
            export_keys,
        }),
        Cmd::Check { config } => match config::Config::load(&config) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("ikeda: warning: {w}");
                }
                println!("{}: OK ({} connection(s))", config.display(), c.conns.len());
                0
            }
            Err(e) => {
                eprintln!("ikeda: configuration refused: {e}");
                2
            }
        },
        Cmd::Lab { cmd } => lab::main(cmd),
        Cmd::Down {
            config: Some(config), ..
        } => daemon::teardown(&config, &client_socket(cli.socket)),
        Cmd::Pcap(args) => pcap::main(args),
        Cmd::Audit(args) => audit::main(args),
        Cmd::PcapGen(args) => pcap::gen::main(args),
        cmd => client(&client_socket(cli.socket), cmd),
    };
    ExitCode::from(code as u8)
}
