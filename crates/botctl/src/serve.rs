//! `botctl serve`: the API server over the embedded store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use botcluster_server::{load_or_create_token, router, AppState, Metrics};
use botcluster_store::SqliteStore;
use clap::Args;

use crate::client::data_dir;
use crate::Conn;

/// Options of `botctl serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Keep it on loopback unless a proxy with TLS is in front.
    #[arg(long, env = "BOTCLUSTER_LISTEN", default_value = "127.0.0.1:7780")]
    pub listen: SocketAddr,
}

pub async fn serve(conn: &Conn, args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let dir: PathBuf = data_dir(conn.data_dir.as_ref());
    create_private_dir(&dir)?;
    let db = dir.join("botcluster.db");
    let store = Arc::new(
        SqliteStore::open(&db).with_context(|| format!("opening the store {}", db.display()))?,
    );
    let token = load_or_create_token(&dir)
        .with_context(|| format!("reading or creating the token file in {}", dir.display()))?;
    let metrics = Metrics::new();
    let state = AppState {
        store,
        token: Arc::new(token),
        metrics,
        preview: None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {}: is another botctl serve running? choose another --listen",
                args.listen
            )
        })?;
    tracing::info!(
        listen = %args.listen,
        data_dir = %dir.display(),
        "botcluster API serving; the token is in {}",
        dir.join(botcluster_server::TOKEN_FILE).display()
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
