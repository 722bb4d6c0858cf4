//! botctl: apply, inspect and wait on BotClusters, import a General Bots config.csv, and run the server (`botctl serve`).

#[macro_use]
mod terminal;
mod client;
mod commands;
mod follow;
mod gitsource;
mod kind;
mod render;
mod serve;
mod shards;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Declarative bot fleets on LXD.
///
/// Write a BotCluster in YAML, store it with `botctl apply -f`, and the operator started by
/// `botctl serve` makes LXD containers (and later the Caddy load balancer) match it.
///
/// Start here:
///   botctl serve &                      # the API on 127.0.0.1:7780, state in the data dir
///   botctl apply -f examples/minimal.yaml
///   botctl get
///   botctl status minimal
#[derive(Parser, Debug)]
#[command(name = "botctl", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Command,
}

/// How to reach the server.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The botcluster API server.
    #[arg(
        long,
        global = true,
        env = "BOTCLUSTER_SERVER",
        default_value = "http://127.0.0.1:7780"
    )]
    pub server: String,
    /// Bearer token. Default: the `token` file in the data directory, which `botctl serve`
    /// creates at first start.
    #[arg(long, global = true, env = "BOTCLUSTER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The server's data directory (holds the store and the token file).
    #[arg(long, global = true, env = "BOTCLUSTER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create or update BotClusters and GitSources from YAML/JSON files (several documents
    /// per file allowed, kinds mixed).
    ///
    /// Prints `botcluster/NAME created|configured|unchanged` (or `gitsource/NAME ...`) per
    /// object. Exits non-zero if any object was rejected; the others are still applied.
    /// A BotCluster a GitSource applied is refused unless --force.
    ///
    ///   botctl apply -f examples/minimal.yaml
    ///   botctl apply -f clusters/          # every .yaml/.yml/.json in the directory
    ///   cat bots.yaml | botctl apply -f -
    #[command(verbatim_doc_comment)]
    Apply {
        /// File, directory, or `-` for standard input. Repeatable.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        /// Validate and show what would change (and the plan, when the controller runs),
        /// storing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write BotClusters a GitSource manages anyway (the source's next sync puts Git's
        /// version back: change Git to make it last).
        #[arg(long)]
        force: bool,
    },
    /// List BotClusters, or show one; with -w, then follow every change. `get gitsources
    /// [NAME]` or `get gitsource/NAME` for GitSources (-l and -w work for both kinds).
    ///
    ///   botctl get
    ///   botctl get -l team=bots,tier!=canary
    ///   botctl get -w                      # what exists, then a line per change
    ///   botctl get gitsources
    ///   botctl get gitsources -w
    #[command(verbatim_doc_comment)]
    Get {
        /// A BotCluster name, `gitsources`, `gitsource/NAME` or `botclusters`; all
        /// BotClusters when absent.
        name: Option<String>,
        /// With `gitsources` or `botclusters`: one name.
        second: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Only those whose labels match (Kubernetes' syntax: `k=v`, `k!=v`, `k in (a,b)`,
        /// `k notin (a,b)`, `k`, `!k`, joined by commas).
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// After listing, print a row for every change as it happens (until Ctrl-C); with
        /// -o json|yaml, the changed object.
        #[arg(short, long)]
        watch: bool,
        /// With -w and -o json|yaml: print each change as `{type, object}` (`type` is
        /// ADDED, MODIFIED or DELETED), JSON one per line, as kubectl's flag of this name.
        #[arg(long, requires = "watch")]
        output_watch_events: bool,
    },
    /// Show a BotCluster's conditions, instances and recent events, for people
    /// (`status gitsource/NAME`: a GitSource's revisions, conditions, inventory, history).
    Status {
        /// The BotCluster, or `gitsource/NAME`.
        name: String,
        /// How many recent events to show.
        #[arg(long, default_value_t = 10)]
        events: usize,
        /// Print the page again on every change of the object, BotCluster or GitSource (until
        /// Ctrl-C or its deletion).
        #[arg(short, long)]
        watch: bool,
    },
    /// Delete a BotCluster (its containers are torn down first), or `gitsource/NAME`.
    ///
    /// Deleting a GitSource keeps the BotClusters it applied (they are released: no longer
    /// owned by it) unless --cascade, which deletes them too and needs `spec.prune: true`.
    #[command(verbatim_doc_comment)]
    Delete {
        /// The BotCluster, or `gitsource/NAME`.
        name: String,
        /// With gitsource/NAME: delete the BotClusters it applied too.
        #[arg(long)]
        cascade: bool,
        /// Wait until it is gone.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "120s")]
        timeout: String,
    },
    /// Show what `apply` would change: the spec as a unified diff, then the plan of the next
    /// reconcile pass (containers, drains, load balancer) — which also shows containers that
    /// drifted while the spec stayed the same.
    ///
    ///   botctl diff -f cluster.yaml
    ///
    /// Exit code 0: no differences, 1: differences (spec or plan), >1: error.
    #[command(verbatim_doc_comment)]
    Diff {
        /// File, directory, or `-`. Repeatable.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// Wait until a condition of a BotCluster or a GitSource holds, or it is gone; follows the
    /// server's watch. A condition counts once computed for the object's current generation.
    ///
    /// BotCluster conditions: Ready, Progressing, Degraded (with autoscaling also
    /// MaxInstancesReached, ScalingFailed).
    /// GitSource conditions: Ready, Reconciling, Stalled.
    ///
    ///   botctl wait web --for condition=Ready --timeout 120s
    ///   botctl wait web --for condition=Degraded=False
    ///   botctl wait web --for delete
    ///   botctl wait gitsource/fleet --for condition=Ready
    #[command(verbatim_doc_comment)]
    Wait {
        /// The BotCluster, or `gitsource/NAME`.
        name: String,
        /// `condition=TYPE[=True|False|Unknown]` (default True), or `delete`; for both kinds.
        #[arg(long = "for")]
        for_: String,
        /// Give up after this long (e.g. 30s, 2m).
        #[arg(long, default_value = "120s")]
        timeout: String,
    },
    /// Poll a GitSource now (what a Git host's webhook or a CI job triggers) and wait until
    /// the operator handled it; prints the revision applied, or why not (exit 1).
    ///
    ///   botctl sync fleet
    #[command(verbatim_doc_comment)]
    Sync {
        /// The GitSource.
        name: String,
        /// Only request the sync; do not wait.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait.
        #[arg(long, default_value = "120s")]
        timeout: String,
    },
    /// Turn a General Bots config.csv into a BotCluster YAML (printed, or written with -o).
    ///
    /// Unknown keys are reported on stderr and kept in an annotation; nothing is dropped
    /// silently.
    ///
    ///   botctl import config.csv --name support-bots > support-bots.yaml
    #[command(verbatim_doc_comment)]
    Import {
        /// The config.csv file (`-` for standard input).
        file: String,
        /// Name of the BotCluster.
        #[arg(long)]
        name: String,
        /// LXD image for the containers.
        #[arg(long, default_value = "botcluster-botserver")]
        image: String,
        /// Write the YAML here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Show a cluster's shard map (version, balance, tenant databases, pending rebalance),
    /// or approve the pending rebalance.
    ///
    ///   botctl shards web
    ///   botctl shards approve web
    #[command(verbatim_doc_comment)]
    Shards {
        /// `NAME`, or `approve NAME`.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Print the BotCluster JSON Schema (`--kind gitsource`: the GitSource one).
    Schema {
        /// `botcluster` or `gitsource`.
        #[arg(long, default_value = "botcluster")]
        kind: String,
    },
    /// Run the API server and the controller that reconciles LXD containers and the Caddy
    /// load balancer.
    Serve(serve::ServeArgs),
    /// Print shell completions.
    ///
    ///   botctl completions bash > /etc/bash_completion.d/botctl
    #[command(verbatim_doc_comment)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Output formats of `get`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// A table for people.
    Table,
    /// YAML documents.
    Yaml,
    /// JSON.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(run(cli));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let conn = cli.conn;
    match cli.command {
        Command::Apply {
            files,
            dry_run,
            force,
        } => commands::apply(&conn, &files, dry_run, force).await,
        Command::Get {
            name,
            second,
            output,
            selector,
            watch,
            output_watch_events,
        } => {
            commands::get(
                &conn,
                name.as_deref(),
                second.as_deref(),
                selector.as_deref(),
                output,
                watch.then_some(output_watch_events),
            )
            .await
        }
        Command::Status {
            name,
            events,
            watch,
        } => commands::status(&conn, &name, events, watch).await,
        Command::Delete {
            name,
            cascade,
            wait,
            timeout,
        } => commands::delete(&conn, &name, cascade, wait, &timeout).await,
        Command::Sync {
            name,
            no_wait,
            timeout,
        } => commands::sync(&conn, &name, !no_wait, &timeout).await,
        Command::Diff { files } => commands::diff(&conn, &files).await,
        Command::Wait {
            name,
            for_,
            timeout,
        } => commands::wait(&conn, &name, &for_, &timeout).await,
        Command::Import {
            file,
            name,
            image,
            output,
        } => commands::import(&file, &name, &image, output.as_deref()),
        Command::Shards { args } => shards::run(&conn, &args).await,
        Command::Schema { kind } => {
            match kind.to_ascii_lowercase().as_str() {
                "botcluster" => print!("{}", botcluster_api::schema::botcluster_schema_json()),
                "gitsource" => print!("{}", botcluster_api::gitsource::gitsource_schema_json()),
                other => anyhow::bail!("--kind {other:?}: the kinds are botcluster and gitsource"),
            }
            Ok(0)
        }
        Command::Serve(args) => serve::serve(&conn, args).await.map(|()| 0),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "botctl", &mut std::io::stdout());
            Ok(0)
        }
    }
}
