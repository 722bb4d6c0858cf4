//! `cargo xtask demo`: LXD and Caddy up, the operator started, `examples/minimal.yaml` applied, Ready
//! waited for, status and URLs printed; Ctrl-C tears the cluster down and stops the operator.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::project_root;

const LISTEN: &str = "127.0.0.1:7780";
const CLUSTER: &str = "minimal";
const CADDY_ADMIN: &str = "http://127.0.0.1:2019";

struct Demo {
    botctl: PathBuf,
    data_dir: PathBuf,
    server: Option<Child>,
}

impl Demo {
    fn botctl(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.botctl);
        c.args(args)
            .current_dir(project_root())
            .env("BOTCLUSTER_DATA_DIR", &self.data_dir)
            .env("BOTCLUSTER_SERVER", format!("http://{LISTEN}"));
        c
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        let status = self
            .botctl(args)
            .status()
            .with_context(|| format!("running botctl {}", args.join(" ")))?;
        if !status.success() {
            bail!("botctl {} failed ({status})", args.join(" "));
        }
        Ok(())
    }

    fn stop(&mut self) {
        println!("==> deleting botcluster/{CLUSTER} (its containers are torn down first)");
        if let Err(e) = self.run(&["delete", CLUSTER, "--wait", "--timeout", "120s"]) {
            eprintln!("    {e:#}");
        }
        if let Some(mut s) = self.server.take() {
            println!("==> stopping the operator");
            #[cfg(unix)]
            {
                // SIGTERM: the server shuts down gracefully.
                let _ = Command::new("kill").arg(s.id().to_string()).status();
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = s.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

pub fn run(_args: &[&str]) -> Result<()> {
    println!("==> LXD and the test image");
    crate::lxd::up(&[])?;
    println!("==> Caddy (admin API on {CADDY_ADMIN})");
    crate::caddy::up(&[])?;
    println!("==> building botctl");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "botctl"])
        .current_dir(project_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build -p botctl failed");
    }
    let root = project_root();
    let data_dir = root.join("target/demo");
    std::fs::create_dir_all(&data_dir).context("creating target/demo")?;
    if std::net::TcpStream::connect(LISTEN).is_ok() {
        bail!("{LISTEN} is already in use: is another `botctl serve` (or demo) running? Stop it first");
    }
    let mut demo = Demo {
        botctl: root.join("target/debug/botctl"),
        data_dir,
        server: None,
    };

    println!("==> starting the operator on {LISTEN} (log: target/demo/serve.log)");
    let log = std::fs::File::create(demo.data_dir.join("serve.log")).context("creating the log")?;
    let admin = std::env::var("BOTCLUSTER_CADDY_ADMIN").unwrap_or_else(|_| CADDY_ADMIN.into());
    let mut cmd = demo.botctl(&["serve", "--listen", LISTEN, "--caddy-admin", &admin]);
    cmd.stdout(Stdio::null()).stderr(log);
    #[cfg(unix)]
    {
        // Its own process group: Ctrl-C reaches this chore, which tears down in order.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    demo.server = Some(cmd.spawn().context("starting botctl serve")?);
    let started = Instant::now();
    while std::net::TcpStream::connect(LISTEN).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            demo.stop();
            bail!("the operator did not start; see target/demo/serve.log");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    let result = (|| -> Result<()> {
        println!("==> botctl apply -f examples/minimal.yaml");
        demo.run(&["apply", "-f", "examples/minimal.yaml"])?;
        println!("==> waiting for Ready");
        demo.run(&[
            "wait",
            CLUSTER,
            "--for",
            "condition=Ready",
            "--timeout",
            "180s",
        ])?;
        demo.run(&["status", CLUSTER])?;
        let out = demo
            .botctl(&["get", CLUSTER, "-o", "json"])
            .output()
            .context("botctl get")?;
        let obj: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        println!("\nEach instance answers on its own URL:");
        for i in obj
            .pointer("/status/instances")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let url = i.get("url").and_then(|u| u.as_str()).unwrap_or("-");
            println!(
                "  {:<14} {url}/api/health",
                i.get("name").and_then(|n| n.as_str()).unwrap_or("?")
            );
        }
        if let Some(lb) = obj.pointer("/status/proxy/url").and_then(|u| u.as_str()) {
            println!("\nThe load balancer (Caddy) spreads requests over them:\n  {lb}/");
        }
        println!(
            "\nTry: BOTCLUSTER_DATA_DIR=target/demo target/debug/botctl get\n     (edit examples/minimal.yaml and apply it again to scale)\nPress Ctrl-C to tear everything down."
        );
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        demo.stop();
        bail!("the demo failed; the operator's log is target/demo/serve.log");
    }
    while !interrupted.load(Ordering::SeqCst) {
        if let Some(s) = demo.server.as_mut() {
            if let Ok(Some(status)) = s.try_wait() {
                demo.server = None;
                bail!("the operator exited ({status}); see target/demo/serve.log");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!();
    demo.stop();
    println!("==> done");
    Ok(())
}
