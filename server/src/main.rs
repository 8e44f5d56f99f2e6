//! `portal`: the patient portal server.

use clap::{Parser, Subcommand, ValueEnum};
use server::auth::accounts::{self, NewAccount};
use server::config::DatabaseUrl;
use server::storage::Store;
use server::{Config, Error, demo};
use shared::api::UserRole;
use shared::{ClinicId, PatientId};
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
    /// Print a patient's whole record as a FHIR R4 Bundle (JSON) on standard output.
    Export(Export),
    /// Load a FHIR R4 transaction Bundle (Observations, DiagnosticReports,
    /// MedicationRequests, AllergyIntolerances of one patient) into a clinic's record.
    Import(Import),
    /// Register third-party patient apps (SMART App Launch, public clients).
    #[command(subcommand)]
    SmartClient(SmartClientCommand),
    /// Register clinic systems (SMART Backend Services) that import into a clinic's record.
    #[command(subcommand)]
    SystemClient(SystemClientCommand),
    /// Rebuild the staff patient list's index from every stored document,
    /// in the background at the next start of the server.
    Reindex {
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/portal.db")]
        database_url: DatabaseUrl,
    },
}

#[derive(Subcommand)]
enum SmartClientCommand {
    /// Register a patient app and print its client_id.
    Add {
        /// The app's name, shown to people on the consent page and in access logs.
        #[arg(long)]
        name: String,
        /// The app's one redirect URI (matched exactly).
        #[arg(long)]
        redirect_uri: String,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/portal.db")]
        database_url: DatabaseUrl,
    },
}

#[derive(Subcommand)]
enum SystemClientCommand {
    /// Register a clinic system with its public keys and print its client_id.
    Add {
        /// The clinic whose record it imports into.
        #[arg(long)]
        clinic: ClinicId,
        /// The system's name, shown in access logs.
        #[arg(long)]
        name: String,
        /// Its public keys: a JWK Set (JSON) of EC P-384 (ES384) or RSA (RS384) keys.
        #[arg(long)]
        jwks: std::path::PathBuf,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/portal.db")]
        database_url: DatabaseUrl,
    },
}

async fn smart_client(command: SmartClientCommand) -> Result<(), Error> {
    let SmartClientCommand::Add { name, redirect_uri, database_url } = command;
    let url = webauthn_rs::prelude::Url::parse(&redirect_uri)
        .map_err(|e| Error::BadRequest(format!("--redirect-uri: {e}")))?;
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1"));
    if url.scheme() != "https" && !(url.scheme() == "http" && local) || url.fragment().is_some() {
        return Err(Error::BadRequest(
            "--redirect-uri must be https (http only for localhost) without a fragment".into(),
        ));
    }
    let store = Store::connect(database_url.expose()).await?;
    let client = server::storage::SmartClient {
        id: uuid::Uuid::new_v4().to_string(),
        name: server::smart::client_name(&name).map_err(Error::BadRequest)?,
        redirect_uri: Some(redirect_uri),
        system: None,
    };
    store.create_smart_client(&client, server::Clock::default().now_ms()).await?;
    println!("{}", client.id);
    store.close().await;
    Ok(())
}

async fn system_client(command: SystemClientCommand) -> Result<(), Error> {
    use std::io::Read;
    let SystemClientCommand::Add { clinic, name, jwks, database_url } = command;
    let mut text = String::new();
    std::fs::File::open(&jwks)?
        .take(server::smart::MAX_JWKS_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    server::smart::assertion::check_jwks(&text).map_err(Error::BadRequest)?;
    let store = Store::connect(database_url.expose()).await?;
    store
        .clinic_name(clinic)
        .await?
        .ok_or_else(|| Error::BadRequest(format!("no clinic has the id {clinic}")))?;
    let client = server::storage::SmartClient {
        id: uuid::Uuid::new_v4().to_string(),
        name: server::smart::client_name(&name).map_err(Error::BadRequest)?,
        redirect_uri: None,
        system: Some((clinic, text)),
    };
    store.create_smart_client(&client, server::Clock::default().now_ms()).await?;
    println!("{}", client.id);
    store.close().await;
    Ok(())
}

#[derive(clap::Args)]
struct Export {
    /// The patient's id.
    #[arg(long)]
    patient: PatientId,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/portal.db")]
    database_url: DatabaseUrl,
    /// The portal's URL, for the resources' full URLs; defaults to http://localhost:8080.
    #[arg(long, env = "PORTAL_PUBLIC_URL")]
    public_url: Option<String>,
}

#[derive(clap::Args)]
struct Import {
    /// The clinic whose record the entries join.
    #[arg(long)]
    clinic: ClinicId,
    /// The Bundle (JSON); `-` reads standard input.
    file: std::path::PathBuf,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/portal.db")]
    database_url: DatabaseUrl,
}

/// A hub for a one-shot command: documents in memory only while it runs.
fn command_hub(store: Store) -> server::sync::Hub {
    server::sync::Hub::new(store, server::Clock::default(), 64 * 1024 * 1024)
}

async fn export(args: Export) -> Result<(), Error> {
    let store = Store::connect(args.database_url.expose()).await?;
    let hub = command_hub(store.clone());
    let public_url = args.public_url.unwrap_or_else(|| "http://localhost:8080".into());
    let base = format!("{}/fhir/R4", public_url.trim_end_matches('/'));
    let bundle = server::fhir::export(&hub, args.patient, &base).await.map_err(|e| match e {
        Error::NotFound => Error::BadRequest(format!("no record of patient {}", args.patient)),
        other => other,
    })?;
    // An operator's export is in the patient's access log like any read.
    let event = server::storage::AuditEvent {
        user: None,
        session: None,
        action: shared::api::AuditAction::RecordExported,
        patient: Some(args.patient),
        doc: None,
        detail: "portal export",
    };
    store.audit(&event, hub.clock().now_ms()).await?;
    println!("{}", bundle.to_json_string());
    store.close().await;
    Ok(())
}

async fn import(args: Import) -> Result<(), Error> {
    use std::io::Read;
    let limit = server::fhir::MAX_BUNDLE_BYTES as u64;
    let mut bytes = Vec::new();
    let read = if args.file.as_os_str() == "-" {
        std::io::stdin().take(limit + 1).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(&args.file)?.take(limit + 1).read_to_end(&mut bytes)
    };
    read?;
    let store = Store::connect(args.database_url.expose()).await?;
    let hub = command_hub(store.clone());
    let refused = match server::fhir::parse(&bytes) {
        Ok(bundle) => {
            server::fhir::import::import(
                &hub,
                args.clinic,
                &bundle,
                server::fhir::import::SentBy::Operator,
            )
            .await
        }
        Err(problem) => {
            Err(server::fhir::import::Refused::Invalid(vec![shared::fhir::Issue::new(
                "structure",
                "",
                problem,
            )]))
        }
    };
    let result = match refused {
        Ok(outcome) => {
            // Other instances on PostgreSQL send the entries to their replicas now.
            hub.announce_now(&[outcome.doc]).await?;
            eprintln!(
                "imported {} new entries ({} already in the record)",
                outcome.created, outcome.existing
            );
            Ok(())
        }
        Err(refused) => {
            // The OperationOutcome on standard output, like the API's body.
            println!("{}", refused.outcome().to_json_string());
            match refused {
                server::fhir::import::Refused::Server(error) => Err(error),
                other => Err(Error::BadRequest(other.to_string())),
            }
        }
    };
    store.close().await;
    result
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
    /// The time zone of a clinic created here (an IANA name such as
    /// America/Chicago; UTC if not given); its admin can change it.
    #[arg(long, requires = "clinic_name")]
    time_zone: Option<String>,
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
                let zone = args.time_zone.as_deref().unwrap_or(server::zone::DEFAULT);
                server::zone::check(zone).map_err(Error::BadRequest)?;
                let id = ClinicId::mint();
                store.create_clinic(id, name, now).await?;
                store.set_clinic_time_zone(id, zone).await?;
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
        Command::Export(args) => return export(args).await,
        Command::Import(args) => return import(args).await,
        Command::SmartClient(command) => return smart_client(command).await,
        Command::SystemClient(command) => return system_client(command).await,
        Command::Reindex { database_url } => {
            let store = Store::connect(database_url.expose()).await?;
            store.set_index_backfill(Some("")).await?;
            println!("the index is rebuilt in the background when the server next starts");
            store.close().await;
            return Ok(());
        }
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
