//! `portal`: the patient portal server.

use clap::{Parser, Subcommand, ValueEnum};
use server::auth::accounts::{self, NewAccount};
use server::config::DatabaseUrl;
use server::storage::Store;
use server::{Config, Error, demo};
use shared::ClinicId;
use shared::api::UserRole;
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
    /// Create a user and print their one-time enrollment link.
    Invite(Invite),
}

#[derive(Clone, Copy, ValueEnum)]
enum InviteRole {
    Admin,
    Provider,
    Patient,
}

#[derive(clap::Args)]
struct Invite {
    #[arg(long)]
    role: InviteRole,
    /// The person's display name.
    #[arg(long)]
    name: String,
    /// The clinic by name; an admin's clinic is created if it does not exist.
    #[arg(long, conflicts_with = "clinic")]
    clinic_name: Option<String>,
    /// The clinic by id.
    #[arg(long)]
    clinic: Option<ClinicId>,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/portal.db")]
    database_url: DatabaseUrl,
    /// The URL people open; defaults to http://localhost:8080.
    #[arg(long, env = "PORTAL_PUBLIC_URL")]
    public_url: Option<String>,
}

async fn invite(args: Invite) -> Result<(), Error> {
    let store = Store::connect(args.database_url.expose()).await?;
    let now = server::Clock::default().now_ms();
    let role = match args.role {
        InviteRole::Admin => UserRole::Admin,
        InviteRole::Provider => UserRole::Provider,
        InviteRole::Patient => UserRole::Patient,
    };
    let clinic = match (args.clinic, &args.clinic_name) {
        (Some(id), _) => {
            store
                .clinic_name(id)
                .await?
                .ok_or_else(|| Error::BadRequest(format!("no clinic has the id {id}")))?;
            Some(id)
        }
        (None, Some(name)) => match store.clinic_by_name(name).await? {
            Some(id) => Some(id),
            None if matches!(role, UserRole::Admin) => {
                let id = ClinicId::mint();
                store.create_clinic(id, name, now).await?;
                println!("Created clinic {name:?} with id {id}");
                Some(id)
            }
            None => return Err(Error::BadRequest(format!("no clinic is named {name:?}"))),
        },
        (None, None) if matches!(role, UserRole::Patient) => None,
        (None, None) => {
            return Err(Error::BadRequest(
                "an admin or provider needs --clinic or --clinic-name".into(),
            ));
        }
    };
    let public_url = args.public_url.unwrap_or_else(|| "http://localhost:8080".into());
    let new = NewAccount {
        role,
        display_name: args.name,
        clinic,
        patient: None,
        may_message: false,
        created_by: None,
    };
    let invitation =
        accounts::create_account(&store, public_url.trim_end_matches('/'), new, now).await?;
    println!(
        "Created {} {} (user id {})",
        role.code(),
        invitation.user.display_name,
        invitation.user.id
    );
    println!("One-time enrollment link (valid 72 hours): {}", invitation.link);
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PORTAL_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,webauthn_rs_core=warn".into()),
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
        Command::Invite(args) => return invite(args).await,
    };
    tracing::info!(?config, "starting");
    let store = Store::connect(config.database_url.expose()).await?;
    let listener = TcpListener::bind(config.addr).await?;
    let port = listener.local_addr()?.port();
    let public_url = config.public_url(port);
    if seed {
        let users = demo::seed(&store).await?;
        println!(
            "Demo data is ready. Open a demo user's one-time enrollment link (valid 72 hours) to add a passkey:"
        );
        let now = server::Clock::default().now_ms();
        for user in users {
            let (link, _) =
                accounts::issue_enrollment(&store, &public_url, user.id, None, now).await?;
            println!("  {:<9} {:<20} {link}", user.role.code(), user.name);
        }
    }
    println!("Patient portal listening: open {public_url}/");
    server::launch(&config, store, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate.recv() => {}
    }
}
