//! botserver-sim: a stand-in for General Bots' botserver that answers health checks in test containers.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use botserver_sim::{serve, Sim};

const USAGE: &str = "\
botserver-sim [--listen ADDR] [--name NAME] [--config-dir DIR] [--shard-map FILE]
              [--bot-config FILE]

  --listen ADDR      address to listen on (env BOTSERVER_LISTEN, default 127.0.0.1:8080)
  --name NAME        instance name to report (env BOTSERVER_NAME, else /etc/hostname,
                     else the kernel hostname)
  --config-dir DIR   where sim.json is read and /sim/files may read
                     (env BOTSERVER_CONFIG_DIR, default /etc/botserver)
  --shard-map FILE   the shard map the operator writes (env BOTSERVER_SHARD_MAP,
                     default /opt/gbo/conf/shards.json)
  --bot-config FILE  the bots' settings the operator writes, whose rateLimit is enforced
                     (env BOTSERVER_BOT_CONFIG, default /opt/gbo/conf/botcluster.json)

Routes: GET /api/health; GET /api/shards, GET /api/shards/route?key=K (tenant=, region=),
POST /api/shards/route (one key per line); POST /sim/healthy, /sim/unhealthy, /sim/slow?ms=N,
/sim/busy?cpu_secs=N[&threads=K], /sim/queue?depth=N; GET /sim/state,
/sim/files?path=FILE; anything else answers with the instance name.
";

struct Options {
    listen: String,
    name: String,
    config_dir: PathBuf,
    shard_map: PathBuf,
    bot_config: PathBuf,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

fn first_line(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut listen = None;
    let mut name = None;
    let mut config_dir = None;
    let mut shard_map = None;
    let mut bot_config = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let slot = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => &mut listen,
            "--name" => &mut name,
            "--config-dir" => &mut config_dir,
            "--shard-map" => &mut shard_map,
            "--bot-config" => &mut bot_config,
            other => return Err(format!("unknown argument `{other}`")),
        };
        let value = it.next().ok_or(format!("{arg} needs a value"))?;
        *slot = Some(value.clone());
    }
    Ok(Some(Options {
        listen: listen
            .or_else(|| env("BOTSERVER_LISTEN"))
            .unwrap_or_else(|| "127.0.0.1:8080".into()),
        name: name
            .or_else(|| env("BOTSERVER_NAME"))
            .or_else(|| first_line("/etc/hostname"))
            .or_else(|| first_line("/proc/sys/kernel/hostname"))
            .unwrap_or_else(|| "botserver".into()),
        config_dir: config_dir
            .or_else(|| env("BOTSERVER_CONFIG_DIR"))
            .unwrap_or_else(|| "/etc/botserver".into())
            .into(),
        shard_map: shard_map
            .or_else(|| env("BOTSERVER_SHARD_MAP"))
            .unwrap_or_else(|| botserver_sim::shards::DEFAULT_MAP_PATH.into())
            .into(),
        bot_config: bot_config
            .or_else(|| env("BOTSERVER_BOT_CONFIG"))
            .unwrap_or_else(|| botserver_sim::ratelimit::DEFAULT_CONFIG_PATH.into())
            .into(),
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("botserver-sim: {why}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&options.listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("botserver-sim: cannot listen on {}: {e}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    let shown = listener
        .local_addr()
        .map_or(options.listen.clone(), |a| a.to_string());
    eprintln!("botserver-sim {} listening on {shown}", options.name);
    let sim = Arc::new(
        Sim::new(options.name, options.config_dir)
            .with_shard_map(options.shard_map)
            .with_bot_config(options.bot_config),
    );
    match serve(listener, sim) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("botserver-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
