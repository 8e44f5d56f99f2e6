//! `portal`: the patient portal server.

use clap::{Parser, Subcommand};
use server::storage::Store;
use server::{Config, Error, demo};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(name = "portal", version, about = "Offline-first patient portal server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the portal.
    Serve(Config),
    /// Seed a demo data set (once) and serve the portal.
    Demo(Config),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PORTAL_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portal: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let (config, seed) = match cli.command {
        Command::Serve(config) => (config, false),
        Command::Demo(config) => (config, true),
    };
    tracing::info!(?config, "starting");
    let store = Store::connect(config.database_url.expose()).await?;
    let listener = TcpListener::bind(config.addr).await?;
    let port = listener.local_addr()?.port();
    let public_url = config.public_url(port);
    if seed {
        let users = demo::seed(&store).await?;
        println!("Demo data is ready. Demo users:");
        for user in users {
            println!("  {:<9} {:<20} user id {}", user.role.code(), user.name, user.id);
        }
    }
    println!("Patient portal listening: open {public_url}/");
    server::launch(&config, store, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate.recv() => {}
    }
}
