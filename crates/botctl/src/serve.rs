//! `botctl serve`: the API server over the embedded store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use botcluster_server::{load_or_create_token, router_and_cache, AppState, Metrics};
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
    /// The LXD to manage: a unix socket path (`unix:///var/lib/lxd/unix.socket` or a plain
    /// path). Default: `$LXD_DIR/unix.socket`, else /var/lib/lxd/unix.socket.
    #[arg(long, env = "BOTCLUSTER_LXD")]
    pub lxd: Option<String>,
    /// How long one LXD request may take before it counts as failed, so a hung daemon shows
    /// as Degraded with a backoff instead of stalling every pass. Waits for LXD operations
    /// (create, start, stop) have their own limit of 120 s.
    #[arg(long, default_value = "20s", value_parser = parse_positive_duration)]
    pub lxd_timeout: std::time::Duration,
    /// Host ports handed to containers whose spec has no `hostPorts` (FIRST-LAST).
    #[arg(long, default_value = "20000-20999", value_parser = parse_range)]
    pub port_range: (u16, u16),
    /// Clusters reconciled in parallel.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Bound on concurrent LXD create requests, across all clusters (each unpacks the image;
    /// LXD 5.0.2 on `dir` fails under heavy concurrency).
    #[arg(long, default_value_t = 8)]
    pub max_concurrent_creates: usize,
    /// Bound on concurrent LXD starts, across all clusters (separate from creates, so the
    /// next create does not wait for an earlier container to finish starting).
    #[arg(long, default_value_t = 16)]
    pub max_concurrent_starts: usize,
    /// How long a pass waits for its LXD actions before it writes status and lets them go on
    /// in the background (status then lists them as still running), so one slow start never
    /// hides the pass's decisions.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration)]
    pub action_budget: std::time::Duration,
    /// Reconcile every cluster at least this often, even without events.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub resync: std::time::Duration,
    /// Caddy's admin API (`http://127.0.0.1:2019` or `unix:///path/admin.sock`); clusters with
    /// a `loadBalancer` get a server of their own there. The default is Caddy's own default
    /// admin address. `none` runs without a load balancer (such clusters then report
    /// ProxyNotConfigured). A Caddy that does not answer is a condition on the clusters that
    /// need it, retried with backoff.
    #[arg(
        long,
        env = "BOTCLUSTER_CADDY_ADMIN",
        default_value = "http://localhost:2019"
    )]
    pub caddy_admin: String,
    /// Consecutive failures to reach LXD (or Caddy) before its circuit breaker opens.
    #[arg(long, default_value_t = 5)]
    pub breaker_threshold: u32,
    /// How long the breaker stays open before trial calls.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub breaker_timeout: std::time::Duration,
    /// Trial calls when half-open.
    #[arg(long, default_value_t = 3)]
    pub breaker_half_open: u32,
    /// Serve the API only; do not reconcile.
    #[arg(long)]
    pub no_controller: bool,
    /// GitSources polled in parallel.
    #[arg(long, default_value_t = 2)]
    pub gitsource_workers: usize,
    /// Tests only: pause this long after each BotCluster a GitSource writes (so a test can
    /// kill the operator mid-sync).
    #[arg(long, hide = true, default_value = "0s", value_parser = parse_duration)]
    pub test_gitsource_apply_pause: std::time::Duration,
    /// The PostgreSQL server where tenant databases are created
    /// (`postgres://USER:PASSWORD@HOST:PORT/postgres`; `cargo xtask pg-up` prints one). A spec
    /// may name another server in `spec.sharding.tenant.server` (without a password).
    #[arg(long, env = "BOTCLUSTER_POSTGRES", hide_env_values = true)]
    pub postgres: Option<String>,
    /// A file holding the password for servers named in specs (their URLs carry none).
    #[arg(long, env = "BOTCLUSTER_POSTGRES_PASSWORD_FILE")]
    pub postgres_password_file: Option<PathBuf>,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("\"{s}\" is not FIRST-LAST, e.g. 20000-20999"))?;
    let a: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("\"{a}\" is not a port"))?;
    let b: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("\"{b}\" is not a port"))?;
    if a == 0 || a > b {
        return Err(format!(
            "{a}-{b}: the first port must be at least 1 and not above the last"
        ));
    }
    Ok((a, b))
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    botcluster_api::quantity::parse_duration(s)
}

fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("\"{s}\" is zero; give a time above 0, e.g. 20s"));
    }
    Ok(d)
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut preview: Option<Arc<dyn botcluster_server::PlanPreview>> = None;
    let mut controller_task = None;
    let mut gitsource_task = None;
    if !args.no_controller {
        let socket = match &args.lxd {
            Some(s) => PathBuf::from(s.strip_prefix("unix://").unwrap_or(s)),
            None => lxd_client::Client::default_socket_path(),
        };
        let client = lxd_client::Client::unix(&socket)
            .with_context(|| format!("setting up the LXD client for {}", socket.display()))?
            .with_request_timeout(args.lxd_timeout)
            .with_operation_timeout(Some(std::time::Duration::from_secs(120)));
        if !socket.exists() {
            tracing::warn!(
                socket = %socket.display(),
                "no LXD socket yet; the controller retries with backoff (start LXD with `cargo xtask lxd-up`, or pass --lxd)"
            );
        }
        let config = botcluster_controller::ReconcilerConfig {
            port_range: args.port_range,
            max_concurrent_creates: args.max_concurrent_creates,
            max_concurrent_starts: args.max_concurrent_starts,
            resync: args.resync,
            action_budget: args.action_budget,
            ..Default::default()
        };
        let cm = botcluster_controller::metrics::ControllerMetrics::new(&metrics.registry);
        let client = client.with_observer(Arc::new(botcluster_controller::metrics::LxdObserver(
            cm.clone(),
        )));
        let breaker = botcluster_controller::breaker::BreakerConfig {
            threshold: args.breaker_threshold,
            timeout: args.breaker_timeout,
            half_open: args.breaker_half_open,
        };
        let backend = Arc::new(botcluster_controller::breaker::BreakerBackend::new(
            botcluster_controller::backend::LxdBackend::new(client.clone()),
            breaker,
        ));
        let mut reconciler = botcluster_controller::BotClusterReconciler::new(
            store.clone(),
            backend,
            cm.clone(),
            config,
        );
        match args.caddy_admin.trim() {
            "none" | "" => tracing::info!("load balancer: none (--caddy-admin none)"),
            url => {
                let client = caddy_client::Client::from_url(url)
                    .with_context(|| format!("--caddy-admin {url}: not an admin address; use http://127.0.0.1:2019, unix:///path/admin.sock, or none"))?;
                tracing::info!(caddy = %url, "load balancer: Caddy");
                reconciler = reconciler.with_proxy(Arc::new(
                    botcluster_controller::breaker::BreakerProxy::new(
                        botcluster_controller::proxy::CaddyProxy::new(client),
                        breaker,
                    ),
                ));
            }
        }
        let password = match &args.postgres_password_file {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| {
                        format!(
                            "--postgres-password-file {}: cannot read it",
                            path.display()
                        )
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
        };
        if let Some(url) = args.postgres.as_deref().filter(|u| !u.trim().is_empty()) {
            pg_client::Server::new(url, None).with_context(|| {
                "--postgres: not a PostgreSQL URL; use postgres://USER:PASSWORD@HOST:PORT/postgres"
            })?;
            tracing::info!(
                postgres = %botcluster_controller::botcluster::shards::without_password(url),
                "tenant databases: PostgreSQL"
            );
        }
        reconciler = reconciler.with_postgres(
            botcluster_controller::botcluster::shards::PostgresSettings {
                url: args.postgres.clone().filter(|u| !u.trim().is_empty()),
                password,
            },
        );
        let reconciler = Arc::new(reconciler);
        let controller = botcluster_controller::Controller::new(
            store.clone(),
            reconciler.clone(),
            cm,
            args.workers,
        );
        preview = Some(Arc::new(DryRun(reconciler)));
        let triggers = vec![botcluster_controller::botcluster::triggers::lxd_events(
            client,
        )];
        controller_task = Some(tokio::spawn(controller.run(triggers, stop_rx.clone())));
        // The second kind: GitSources, with their git cache under the data directory.
        let git = Arc::new(git_client::GitCli::new(dir.join("git-cache")));
        let gitsources = Arc::new(
            botcluster_controller::GitSourceReconciler::new(
                store.clone(),
                git,
                botcluster_controller::GitSourceMetrics::new(&metrics.registry),
            )
            .with_credentials_dir(dir.join("git-credentials"))
            .with_reserved_ports(botcluster_server::ReservedPorts {
                operator_range: Some(args.port_range),
                api: Some(args.listen),
            })
            .with_apply_pause(args.test_gitsource_apply_pause),
        );
        let gm = botcluster_controller::metrics::ControllerMetrics::named(
            &metrics.registry,
            "gitsource",
        );
        let git_controller = botcluster_controller::Controller::new(
            store.clone(),
            gitsources,
            gm,
            args.gitsource_workers,
        );
        gitsource_task = Some(tokio::spawn(git_controller.run(Vec::new(), stop_rx)));
        tracing::info!(lxd = %socket.display(), "controller started");
    }
    let state = AppState {
        store,
        token: Arc::new(token),
        metrics,
        preview,
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
    let (app, cache) = router_and_cache(state, Default::default());
    // Specs may not claim the ports the operator itself uses (docs/security.md).
    let app = app.layer(axum::Extension(botcluster_server::ReservedPorts {
        operator_range: Some(args.port_range),
        api: Some(args.listen),
    }));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Open watches would hold the graceful shutdown until their timeout: end them.
            cache.close();
        })
        .await
        .context("serving HTTP")?;
    let _ = stop_tx.send(true);
    if let Some(t) = controller_task {
        let _ = t.await;
    }
    if let Some(t) = gitsource_task {
        let _ = t.await;
    }
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

/// Dry runs through the HTTP API ask the reconciler what its next pass would do.
struct DryRun(Arc<botcluster_controller::BotClusterReconciler>);

#[async_trait::async_trait]
impl botcluster_server::PlanPreview for DryRun {
    async fn preview(
        &self,
        desired: &botcluster_api::BotCluster,
    ) -> Result<botcluster_server::Preview, String> {
        let p = self.0.preview(desired).await?;
        Ok(botcluster_server::Preview {
            actions: p.actions,
            notes: p.notes,
        })
    }
}
