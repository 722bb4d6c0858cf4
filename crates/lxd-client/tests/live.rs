//! Integration tests against the real LXD daemon on this machine.
//!
//! - The socket is `$LXD_DIR/unix.socket` or `/var/lib/lxd/unix.socket`. When it is
//!   absent, each test prints `skipped: no LXD at <path>` and passes, except when
//!   `CI` is set to a truthy value (`true`, `1`...), where it fails
//!   (`test_support::require`).
//! - Image: the alias in `BOTCLUSTER_TEST_IMAGE` (default `botcluster-botserver`) if
//!   it exists, else `lxdc-test-busybox`, which the tests build from
//!   `/bin/busybox` (package `busybox-static`) and import when missing.
//! - Instances are named `lxdc-test-<pid>-<random>-<tag>` and deleted by a guard
//!   even when a test fails. Leftovers of dead test processes are swept.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lxd_client::{
    Client, Error, EventStream, EventType, FilePush, Filter, ImageImport, InstancePatch,
    InstanceSource, InstanceStatePut, InstancesPost, RequestObserver,
};
use sha2::{Digest, Sha256};
use test_support::Missing;

const OWN_IMAGE_ALIAS: &str = "lxdc-test-busybox";
const NAME_PREFIX: &str = "lxdc-test-";

// ------------------------------------------------------------------- harness

/// The client, or what is missing when there is no LXD to test.
fn connect() -> Result<Client, Missing> {
    let path = Client::default_socket_path();
    if !path.exists() {
        return Err(Missing::new(
            format!("no LXD at {}", path.display()),
            "start LXD first (cargo xtask lxd-up)",
        ));
    }
    Ok(Client::unix(path).expect("client"))
}

/// The client, or returns from the test: skipped, or failed under a truthy `CI`.
macro_rules! lxd_or_skip {
    () => {
        match test_support::require(connect()) {
            Some(c) => c,
            None => return,
        }
    };
}

fn unique_name(tag: &str) -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!(
        "{NAME_PREFIX}{}-{:08x}-{tag}",
        std::process::id(),
        h.finish() as u32
    )
}

/// Force-stops and deletes the tracked instances when dropped, also on panic.
/// Runs on its own thread and runtime because `Drop` cannot await.
struct Cleanup {
    socket: PathBuf,
    names: Vec<String>,
}

impl Cleanup {
    fn new(client: &Client) -> Self {
        Cleanup {
            socket: client.socket_path().expect("unix client").to_path_buf(),
            names: Vec::new(),
        }
    }

    fn track(&mut self, name: &str) -> String {
        self.names.push(name.to_owned());
        name.to_owned()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.names);
        let socket = self.socket.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async move {
                let client = Client::unix(&socket).expect("client");
                for name in names {
                    let work = remove_instance(&client, &name);
                    match tokio::time::timeout(Duration::from_secs(60), work).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => eprintln!("cleanup: {e}"),
                        Err(_) => eprintln!("cleanup: deleting {name} timed out"),
                    }
                }
            });
        })
        .join();
    }
}

/// Stop (if running) and delete; an instance that is already gone is fine.
async fn remove_instance(client: &Client, name: &str) -> Result<(), Error> {
    match client
        .change_state(name, &InstanceStatePut::stop().force(true))
        .await
    {
        Ok(()) | Err(Error::AlreadyStopped { .. }) | Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    match client.delete_instance(name).await {
        Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The image alias to create instances from, importing our own busybox image when
/// needed. Serialised across the tests of this process; tolerant of other
/// processes doing the same.
async fn test_image(client: &Client) -> String {
    static IMAGE: tokio::sync::Mutex<Option<String>> = tokio::sync::Mutex::const_new(None);
    let mut slot = IMAGE.lock().await;
    if let Some(alias) = slot.as_ref() {
        return alias.clone();
    }
    sweep_leftovers(client).await;
    let wanted =
        std::env::var("BOTCLUSTER_TEST_IMAGE").unwrap_or_else(|_| "botcluster-botserver".into());
    let alias = if client.get_image_alias(&wanted).await.is_ok() {
        wanted
    } else {
        ensure_own_image(client).await;
        OWN_IMAGE_ALIAS.to_owned()
    };
    *slot = Some(alias.clone());
    alias
}

async fn ensure_own_image(client: &Client) {
    match client.get_image_alias(OWN_IMAGE_ALIAS).await {
        Ok(_) => return,
        Err(Error::NotFound { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let tarball = busybox_image_tarball();
    // Deterministic tarball → deterministic fingerprint, so a concurrent or
    // earlier import of the same bytes is recognised.
    let fingerprint = hex(&Sha256::digest(&tarball));
    let opts = ImageImport {
        filename: Some(format!("{OWN_IMAGE_ALIAS}.tar")),
        public: false,
        aliases: vec![],
    };
    match client.import_image(tarball, &opts).await {
        Ok(fp) => assert_eq!(
            fp, fingerprint,
            "LXD fingerprints unified images by SHA-256"
        ),
        Err(Error::AlreadyExists { .. }) => {}
        Err(e) => panic!("importing the test image: {e}"),
    }
    match client
        .create_image_alias(OWN_IMAGE_ALIAS, &fingerprint, "lxd-client tests")
        .await
    {
        Ok(()) | Err(Error::AlreadyExists { .. }) => {}
        Err(e) => panic!("aliasing the test image: {e}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A unified LXD image: `metadata.yaml` + `rootfs/` with busybox as init, which
/// brings `lo` up and then idles.
fn busybox_image_tarball() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox")
        .expect("/bin/busybox is needed to build the test image: apt-get install busybox-static");
    // Rust's names for x86_64 and aarch64 are LXD's too.
    let arch = std::env::consts::ARCH;
    let metadata = format!(
        "architecture: {arch}\ncreation_date: 1700000000\nproperties:\n  description: lxd-client test busybox\n  os: busybox\n"
    );
    let inittab = "::sysinit:/bin/busybox ip link set lo up\n::respawn:/bin/busybox sleep 86400\n";

    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).expect("tar file");
    };
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Directory);
        b.append_data(&mut h, path, std::io::empty())
            .expect("tar dir");
    };
    let link = |b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut h, path, target).expect("tar link");
    };
    file(&mut b, "metadata.yaml", 0o644, metadata.as_bytes());
    dir(&mut b, "rootfs");
    for d in [
        "bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "root", "run", "var",
    ] {
        dir(&mut b, &format!("rootfs/{d}"));
    }
    file(&mut b, "rootfs/bin/busybox", 0o755, &busybox);
    link(&mut b, "rootfs/bin/sh", "busybox");
    link(&mut b, "rootfs/sbin/init", "../bin/busybox");
    file(&mut b, "rootfs/etc/inittab", 0o644, inittab.as_bytes());
    b.into_inner().expect("tar")
}

/// Deletes `lxdc-test-<pid>-…` instances whose test process is gone.
async fn sweep_leftovers(client: &Client) {
    let filter = Filter::new().matches("name", &format!("^{NAME_PREFIX}[0-9]+-"));
    let Ok(found) = client.list_instances(Some(&filter)).await else {
        return;
    };
    for inst in found {
        let pid = inst
            .name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .unwrap_or("");
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            if let Err(e) = remove_instance(client, &inst.name).await {
                eprintln!("sweeping leftover {}: {e}", inst.name);
            }
        }
    }
}

/// Reads `events` until a lifecycle event `action` about `name` arrives.
async fn expect_lifecycle(events: &mut EventStream, action: &str, name: &str) {
    let wait = async {
        while let Some(item) = events.next().await {
            let event = item.expect("event stream item");
            if let Some(l) = event.lifecycle() {
                if l.action == action && l.instance_name() == Some(name) {
                    return;
                }
            }
        }
        panic!("event stream ended before {action} for {name}");
    };
    tokio::time::timeout(Duration::from_secs(15), wait)
        .await
        .unwrap_or_else(|_| panic!("no {action} event for {name} within 15 s"));
}

fn container(name: &str, image: &str) -> InstancesPost {
    InstancesPost::container(name, InstanceSource::image_alias(image))
}

// ---------------------------------------------------------------------- tests

#[tokio::test]
async fn instance_lifecycle_from_create_to_not_found() {
    let lxd = lxd_or_skip!();
    let image = test_image(&lxd).await;
    let mut cleanup = Cleanup::new(&lxd);
    let name = cleanup.track(&unique_name("life"));
    let cluster = format!("demo.{}", std::process::id());

    // Create: stopped, labelled.
    let mut post = container(&name, &image);
    post.config
        .insert("user.botcluster.cluster".into(), cluster.clone());
    lxd.create_instance(&post).await.expect("create");
    let (inst, etag) = lxd.get_instance(&name).await.expect("get after create");
    assert!(inst.is_stopped(), "created instances are stopped: {inst:?}");
    assert_eq!(inst.config["user.botcluster.cluster"], cluster);
    assert!(inst.expanded_devices.contains_key("root"));

    // PATCH with the fresh ETag succeeds; the same (now stale) ETag is refused.
    let patch = InstancePatch::config([("user.lxdc.step", "patched")]);
    lxd.patch_instance(&name, &patch, Some(&etag))
        .await
        .expect("patch with fresh ETag");
    let stale = InstancePatch::config([("user.lxdc.step", "stale")]);
    let err = lxd
        .patch_instance(&name, &stale, Some(&etag))
        .await
        .expect_err("stale ETag must be refused");
    assert!(matches!(err, Error::PreconditionFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("PATCH /1.0/instances/{name}")) && text.contains("ETag"),
        "{text}"
    );
    let (inst, etag2) = lxd.get_instance(&name).await.expect("get after patch");
    assert_eq!(inst.config["user.lxdc.step"], "patched");
    assert_ne!(etag, etag2);

    // Push a file into the stopped instance, creating its parent directories.
    let opts = FilePush {
        uid: Some(1000),
        gid: Some(1000),
        mode: Some(0o640),
        ..Default::default()
    };
    lxd.push_file(&name, "/etc/lxdc/deep/hello.txt", "hello\n", &opts)
        .await
        .expect("push into stopped instance");
    assert_eq!(
        lxd.pull_file(&name, "/etc/lxdc/deep/hello.txt")
            .await
            .expect("pull"),
        b"hello\n"
    );

    // Subscribe before starting, so the start cannot be missed.
    let mut events = lxd.events(&[EventType::Lifecycle]).await.expect("events");
    lxd.change_state(&name, &InstanceStatePut::start())
        .await
        .expect("start");
    let again = lxd.change_state(&name, &InstanceStatePut::start()).await;
    assert!(
        matches!(again, Err(Error::AlreadyRunning { .. })),
        "{again:?}"
    );

    let state = lxd.get_instance_state(&name).await.expect("state");
    assert!(state.is_running(), "{state:?}");
    assert!(state.pid > 0 && state.processes > 0, "{state:?}");

    // Deleting a running instance is refused with a typed error.
    let del = lxd.delete_instance(&name).await;
    assert!(matches!(del, Err(Error::InstanceRunning { .. })), "{del:?}");

    // Push into the running instance (overwrite) and read it back.
    lxd.push_file(&name, "/etc/lxdc/deep/hello.txt", "again\n", &opts)
        .await
        .expect("push into running instance");
    assert_eq!(
        lxd.pull_file(&name, "/etc/lxdc/deep/hello.txt")
            .await
            .expect("pull"),
        b"again\n"
    );
    // Delete it: gone, and deleting again is NotFound.
    lxd.delete_file(&name, "/etc/lxdc/deep/hello.txt")
        .await
        .expect("delete a file");
    let gone = lxd.pull_file(&name, "/etc/lxdc/deep/hello.txt").await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    let again = lxd.delete_file(&name, "/etc/lxdc/deep/hello.txt").await;
    assert!(matches!(again, Err(Error::NotFound { .. })), "{again:?}");

    // The label filter finds exactly this instance; values are matched literally.
    let mine = Filter::new().eq("config.user.botcluster.cluster", &cluster);
    let listed = lxd.list_instances(Some(&mine)).await.expect("list");
    assert_eq!(
        listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        [name.as_str()]
    );
    assert!(listed[0].is_running());
    let dot_is_literal =
        Filter::new().eq("config.user.botcluster.cluster", &cluster.replace('.', "x"));
    assert!(
        lxd.list_instances(Some(&dot_is_literal))
            .await
            .expect("list")
            .is_empty(),
        "'.' in a filter value must not act as a regex wildcard"
    );

    expect_lifecycle(&mut events, "instance-started", &name).await;

    // Metrics see the running instance. LXD caches /1.0/metrics per project for
    // a few seconds, so a just-started instance may take a moment to show up.
    let m = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let metrics = lxd.metrics().await.expect("metrics");
            if let Some(m) = metrics.get(&inst.project, &name) {
                return m.clone();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} missing from /1.0/metrics for 20 s"));
    assert!(m.memory_bytes > 0, "{m:?}");
    assert!(m.cpu_seconds >= 0.0, "{m:?}");

    // Stop (forced), then stopping again is a typed no-op.
    lxd.change_state(&name, &InstanceStatePut::stop().force(true))
        .await
        .expect("stop");
    let again = lxd
        .change_state(&name, &InstanceStatePut::stop().force(true))
        .await;
    assert!(
        matches!(again, Err(Error::AlreadyStopped { .. })),
        "{again:?}"
    );
    expect_lifecycle(&mut events, "instance-stopped", &name).await;

    lxd.delete_instance(&name).await.expect("delete");
    let gone = lxd.get_instance(&name).await.expect_err("deleted");
    assert!(gone.is_not_found(), "{gone:?}");
    let text = gone.to_string();
    assert!(
        text.contains(&format!("GET /1.0/instances/{name}")) && text.contains("not found"),
        "{text}"
    );
}

#[tokio::test]
async fn duplicate_create_is_already_exists() {
    let lxd = lxd_or_skip!();
    let image = test_image(&lxd).await;
    let mut cleanup = Cleanup::new(&lxd);
    let name = cleanup.track(&unique_name("dup"));
    lxd.create_instance(&container(&name, &image))
        .await
        .expect("first create");
    let err = lxd
        .create_instance(&container(&name, &image))
        .await
        .expect_err("second create");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("POST /1.0/instances") && text.contains("already exists"),
        "{text}"
    );
}

#[tokio::test]
async fn a_target_member_reaches_lxd_which_refuses_it_when_not_clustered() {
    let lxd = lxd_or_skip!();
    let image = test_image(&lxd).await;
    let mut cleanup = Cleanup::new(&lxd);
    let name = cleanup.track(&unique_name("tgt"));
    let err = lxd
        .create_instance_on(&container(&name, &image), Some("no-such-member"))
        .await
        .expect_err("a standalone LXD has no members");
    let text = err.to_string();
    assert!(
        text.contains("POST /1.0/instances") && text.contains("Target only allowed when clustered"),
        "{text}"
    );
    assert!(lxd.get_instance(&name).await.is_err(), "nothing created");
}

#[tokio::test]
async fn reads_make_no_writes_and_observer_sees_every_request() {
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, String, u16)>>);
    impl RequestObserver for Recorder {
        fn observe(&self, method: &str, path_kind: &str, status: u16, _: Duration) {
            self.0
                .lock()
                .expect("recorder")
                .push((method.into(), path_kind.into(), status));
        }
    }

    let lxd = lxd_or_skip!();
    let image = test_image(&lxd).await;
    let recorder = Arc::new(Recorder::default());
    let lxd = lxd.with_observer(recorder.clone());
    let mut cleanup = Cleanup::new(&lxd);
    let name = cleanup.track(&unique_name("obs"));

    let before = lxd.write_count();
    lxd.list_instances(Some(&Filter::new().eq("name", &name)))
        .await
        .expect("list");
    assert!(lxd
        .get_instance(&name)
        .await
        .expect_err("absent")
        .is_not_found());
    lxd.server().await.expect("server");
    assert_eq!(lxd.write_count(), before, "reads must not count as writes");

    lxd.create_instance(&container(&name, &image))
        .await
        .expect("create");
    assert_eq!(
        lxd.write_count(),
        before + 1,
        "a create is one POST; waiting is a read"
    );

    let seen = recorder.0.lock().expect("recorder").clone();
    let has = |m: &str, p: &str, s: u16| seen.iter().any(|(a, b, c)| a == m && b == p && *c == s);
    assert!(has("GET", "/1.0/instances", 200), "{seen:?}");
    assert!(has("GET", "/1.0/instances/{name}", 404), "{seen:?}");
    assert!(has("GET", "/1.0", 200), "{seen:?}");
    assert!(has("POST", "/1.0/instances", 202), "{seen:?}");
    assert!(has("GET", "/1.0/operations/{name}/wait", 200), "{seen:?}");
}

#[tokio::test]
async fn server_info_images_and_projects() {
    let lxd = lxd_or_skip!();
    let image = test_image(&lxd).await;

    let server = lxd.server().await.expect("server");
    assert!(
        server.has_extension("api_filtering"),
        "{:?}",
        server.api_extensions
    );
    assert!(!server.environment.server_version.is_empty());
    assert_eq!(server.auth, "trusted");

    let alias = lxd.get_image_alias(&image).await.expect("alias");
    let images = lxd.list_images().await.expect("images");
    assert!(
        images
            .iter()
            .any(|i| i.fingerprint == alias.target && i.aliases.iter().any(|a| a.name == image)),
        "alias {image} → {} not in image list",
        alias.target
    );
    let img = lxd.get_image(&alias.target).await.expect("image");
    assert_eq!(img.fingerprint, alias.target);
    assert!(lxd
        .get_image_alias("lxdc-test-no-such-alias")
        .await
        .expect_err("absent alias")
        .is_not_found());

    assert!(lxd.project_exists("default").await.expect("project"));
    let nowhere = lxd.with_project("lxdc-test-no-such-project");
    assert!(!nowhere
        .project_exists("lxdc-test-no-such-project")
        .await
        .expect("project"));
    // LXD answers a list in a missing project with an empty list, not an error.
    assert!(nowhere.list_instances(None).await.expect("list").is_empty());
}

#[tokio::test]
async fn default_profile_pool_and_a_moved_alias_read_back() {
    let lxd = lxd_or_skip!();
    let image = test_image(&lxd).await;

    // The default profile's root disk names a pool that exists.
    let profile = lxd.get_profile("default").await.expect("profile");
    assert_eq!(profile.name, "default");
    let root = profile
        .devices
        .values()
        .find(|d| {
            d.get("type").map(String::as_str) == Some("disk")
                && d.get("path").map(String::as_str) == Some("/")
        })
        .expect("the default profile has a root disk (cargo xtask lxd-up adds one)");
    let pool = lxd.get_storage_pool(&root["pool"]).await.expect("pool");
    assert_eq!(pool.name, root["pool"]);
    assert!(!pool.driver.is_empty(), "{pool:?}");
    assert!(lxd
        .get_profile("lxdc-test-no-such-profile")
        .await
        .expect_err("absent profile")
        .is_not_found());
    assert!(lxd
        .get_storage_pool("lxdc-test-no-such-pool")
        .await
        .expect_err("absent pool")
        .is_not_found());

    // An alias of our own, moved with PUT: the description is replaced.
    let target = lxd.get_image_alias(&image).await.expect("alias").target;
    let alias = unique_name("alias");
    lxd.create_image_alias(&alias, &target, "first")
        .await
        .expect("create alias");
    let put = lxd.put_image_alias(&alias, &target, "second").await;
    let read = lxd.get_image_alias(&alias).await;
    lxd.request("DELETE", &format!("/1.0/images/aliases/{alias}"), None)
        .await
        .expect("delete alias");
    put.expect("put alias");
    let read = read.expect("read alias");
    assert_eq!(
        (read.target.as_str(), read.description.as_str()),
        (target.as_str(), "second")
    );
    assert!(lxd
        .put_image_alias(&alias, &target, "gone")
        .await
        .expect_err("absent alias")
        .is_not_found());
}

#[tokio::test]
async fn invalid_config_is_reported_with_lxds_message() {
    let lxd = lxd_or_skip!();
    let image = test_image(&lxd).await;
    let mut cleanup = Cleanup::new(&lxd);
    let name = cleanup.track(&unique_name("bad"));
    let mut post = container(&name, &image);
    post.config.insert("limits.bogus".into(), "1".into());
    let err = lxd
        .create_instance(&post)
        .await
        .expect_err("invalid config");
    let text = err.to_string();
    assert!(text.contains("POST /1.0/instances"), "{text}");
    assert!(text.contains("limits.bogus"), "{text}");
}

/// LXD pings every 10 s and drops a subscriber that misses more than two pongs.
/// The client answers pings in a background task, so a subscriber that does not
/// poll for 35 s still receives later events.
#[tokio::test]
async fn event_subscription_survives_keepalive_without_polling() {
    let lxd = lxd_or_skip!();
    let image = test_image(&lxd).await;
    let mut cleanup = Cleanup::new(&lxd);
    let name = cleanup.track(&unique_name("keep"));
    let mut events = lxd.events(&[EventType::Lifecycle]).await.expect("events");
    tokio::time::sleep(Duration::from_secs(35)).await;
    lxd.create_instance(&container(&name, &image))
        .await
        .expect("create");
    expect_lifecycle(&mut events, "instance-created", &name).await;
}
