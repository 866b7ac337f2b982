//! `c2quay-broker-emulator`: runs the Pact Broker stand-in for demos and
//! manual testing. Not a broker for production (see the crate docs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use c2quay_broker_emulator::{AuthConfig, BasicUser, Credential, EmulatorConfig, Seed, start};
use clap::Parser;

/// A stateful Pact Broker stand-in for c2quay's tests and demos (NOT for production).
#[derive(Debug, Parser)]
#[command(name = "c2quay-broker-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9292")]
    listen: SocketAddr,
    /// Seed file (YAML or JSON) applied at start.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Require HTTP Basic auth with this read/write user (`user:pass`).
    #[arg(long, value_name = "USER:PASS")]
    basic_auth: Option<String>,
    /// Also accept this read-only Basic user (`user:pass`).
    #[arg(long, value_name = "USER:PASS")]
    basic_auth_read_only: Option<String>,
    /// Require a Bearer token, read from this file (trimmed).
    #[arg(long, value_name = "FILE")]
    bearer_token_file: Option<PathBuf>,
    /// Serve the API under this path prefix (e.g. `/broker`).
    #[arg(long, default_value = "")]
    path_prefix: String,
    /// Fixed base URL for hrefs (default: from the request's Host header).
    #[arg(long)]
    base_url: Option<String>,
}

fn config(args: &Args) -> Result<EmulatorConfig, String> {
    let parse_user = |flag: &str, v: &Option<String>| -> Result<Option<BasicUser>, String> {
        v.as_deref()
            .map(|s| BasicUser::parse(s).ok_or_else(|| format!("{flag} must be USER:PASS")))
            .transpose()
    };
    let mut auth = AuthConfig {
        basic: parse_user("--basic-auth", &args.basic_auth)?,
        basic_read_only: parse_user("--basic-auth-read-only", &args.basic_auth_read_only)?,
        bearer_tokens: Vec::new(),
    };
    if let Some(f) = &args.bearer_token_file {
        let token = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read --bearer-token-file {}: {e}", f.display()))?;
        auth.bearer_tokens.push(Credential::new(token.trim()));
    }
    let seed = args
        .seed
        .as_deref()
        .map(Seed::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(EmulatorConfig {
        listen: args.listen,
        path_prefix: args.path_prefix.clone(),
        base_url: args.base_url.clone(),
        auth,
        seed,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("c2quay-broker-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    let emulator = match start(cfg).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("c2quay-broker-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "c2quay-broker-emulator (a Pact Broker stand-in for tests and demos, NOT for production) listening on {}",
        emulator.base_url
    );
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}
