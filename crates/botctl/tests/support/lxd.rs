//! The real LXD for the live tests: the client (with the test image), containers by prefix,
//! and the sweep of what killed runs left behind.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lxd_client::{Client, Instance, InstanceStatePut};
use test_support::Missing;

use super::image;

/// The LXD client once LXD answers with the test image, or what is missing (for
/// `test_support::require`). A busy daemon can be slow to answer: only a clear "not found"
/// means no image; other errors are retried for two minutes.
pub async fn connect() -> Result<Client, Missing> {
    let socket = Client::default_socket_path();
    let missing = |why: String| Err(Missing::new(why, "run `cargo xtask lxd-up` first"));
    if !socket.exists() {
        return missing(format!("no LXD at {}", socket.display()));
    }
    let client = Client::unix(&socket).expect("client");
    let started = Instant::now();
    loop {
        match client.get_image_alias(&image()).await {
            Ok(_) => return Ok(client),
            Err(e) if e.is_not_found() => {
                return missing(format!("LXD has no image alias {}", image()))
            }
            Err(e) if started.elapsed() > Duration::from_secs(120) => {
                return missing(format!(
                    "LXD does not answer for image alias {}: {e}",
                    image()
                ))
            }
            Err(e) => {
                eprintln!("LXD did not answer yet ({e}); retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Deletes containers of earlier runs that were killed before cleaning up: names
/// `e2e-<pid>-<tag>...` whose process is gone.
pub async fn sweep_dead_runs(client: &Client, tag: &str) {
    let Ok(all) = client.list_instances(None).await else {
        return;
    };
    for i in all.into_iter().filter(|i| of_a_dead_run(&i.name, tag)) {
        force_delete(client, &i.name).await;
    }
}

/// Deletes test profiles (`e2e-<pid>-...`) of killed runs; a profile still in use stays.
pub fn sweep_dead_profiles() {
    let o = lxc(&["query", "/1.0/profiles"]);
    let urls: Vec<String> = serde_json::from_slice(&o.stdout).unwrap_or_default();
    for u in urls {
        let name = u.rsplit('/').next().unwrap_or_default();
        if of_a_dead_run(name, "") {
            let _ = lxc(&["profile", "delete", name]);
        }
    }
}

/// Whether `name` (`e2e-<pid>-<tag>...`) belongs to a test run whose process is gone.
pub fn of_a_dead_run(name: &str, tag: &str) -> bool {
    let mut parts = name.splitn(3, '-');
    parts.next() == Some("e2e")
        && parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        && parts.next().is_some_and(|rest| rest.starts_with(tag))
}

/// The `lxc` command line (fixed arguments, no shell), for what the typed client does not
/// cover: profiles.
pub fn lxc(args: &[&str]) -> Output {
    Command::new("lxc").args(args).output().expect("lxc")
}

/// Stops (forced) and deletes one container, whatever state it is in.
pub async fn force_delete(client: &Client, name: &str) {
    let _ = client
        .change_state(name, &InstanceStatePut::stop().force(true))
        .await;
    // Let LXD's stop hooks run before the instance disappears (see LxdBackend::delete).
    tokio::time::sleep(Duration::from_millis(750)).await;
    let _ = client.delete_instance(name).await;
}

/// [`force_delete`] of every container named `<prefix>...`, on a runtime of its own (so a
/// `Drop` may call it from inside a test's runtime).
pub fn delete_containers_blocking(prefix: &str) {
    let prefix = prefix.to_owned();
    let socket = Client::default_socket_path();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let Ok(c) = Client::unix(&socket) else { return };
            if let Ok(all) = c.list_instances(None).await {
                for i in all.into_iter().filter(|i| i.name.starts_with(&prefix)) {
                    force_delete(&c, &i.name).await;
                }
            }
        })
    })
    .join();
}

/// The containers of `cluster` (`<cluster>-...`) in LXD, sorted by name.
///
/// LXD 5.0.2 here sometimes answers nothing for a minute while a container start is stuck in
/// its hooks; that is LXD's trouble, not the operator's, so a failed list is asked again.
pub async fn containers(client: &Client, cluster: &str) -> Vec<Instance> {
    let prefix = format!("{cluster}-");
    let mut tries = 0;
    let all = loop {
        match client.list_instances(None).await {
            Ok(all) => break all,
            Err(e) if tries < 5 => {
                tries += 1;
                eprintln!("listing instances failed ({e}); asking again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => panic!("LXD did not list its instances 6 times in a row: {e}"),
        }
    };
    let mut v: Vec<_> = all
        .into_iter()
        .filter(|i| i.name.starts_with(&prefix))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}
