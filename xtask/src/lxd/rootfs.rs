//! The test image's content: botserver-sim built for it, a static busybox with its applets,
//! a few files in `/etc`, the hostname template, and the hash that names what was built.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

use crate::project_root;
use crate::util::{output, run, say, target_dir};

/// The image property that records the content hash of what the image was built from.
pub(super) const HASH_PROPERTY: &str = "botcluster.content_hash";
const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
/// Where busybox init starts the sim; the first line brings loopback up, because a container
/// without a NIC starts with `lo` down and a proxy device could not reach 127.0.0.1:8080.
const INITTAB: &str = "\
::sysinit:/bin/busybox ip link set lo up
::respawn:/usr/bin/botserver-sim
";

/// Whether the Rust standard library for `target` is installed.
fn rust_target_installed(target: &str) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| {
            let sysroot = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(target)
                .join("lib")
                .is_dir()
        })
}

/// Builds botserver-sim in release mode: static with musl when that target is installed.
pub(super) fn build_sim() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "-p", "botserver-sim"])
        .current_dir(project_root());
    let (bin, how) = if rust_target_installed(MUSL_TARGET) {
        cmd.args(["--target", MUSL_TARGET]);
        (
            target_dir().join(MUSL_TARGET).join("release/botserver-sim"),
            "static (musl)",
        )
    } else {
        (
            target_dir().join("release/botserver-sim"),
            "dynamic (glibc; its libraries are copied in; install the musl target for a static build)",
        )
    };
    say("image", format!("building botserver-sim: {how}"));
    run(&mut cmd)?;
    ensure!(
        bin.is_file(),
        "cargo build did not produce {}",
        bin.display()
    );
    Ok(bin)
}

pub(super) fn find_busybox() -> Result<PathBuf> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("no /bin/busybox; install busybox-static (`cargo xtask lxd-up` does)")?;
    ensure!(
        shared_libraries(&busybox)?.is_none(),
        "{} is dynamically linked; install busybox-static (it replaces the busybox package)",
        busybox.display()
    );
    Ok(busybox)
}

pub(super) fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Copies `from` (following symlinks) to the same absolute path under `rootfs`.
fn copy_in(rootfs: &Path, from: &Path, mode: u32) -> Result<()> {
    let rel = from.strip_prefix("/").unwrap_or(from);
    let content = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_file(&rootfs.join(rel), &content, mode)
}

/// Lays out the image under `stage`: `metadata.yaml` is written later, with the hash.
pub(super) fn build_rootfs(stage: &Path, busybox: &Path, sim: &Path) -> Result<()> {
    let rootfs = stage.join("rootfs");
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc/botserver", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("var/log", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
    ] {
        let path = rootfs.join(dir);
        fs::create_dir_all(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    write_file(&rootfs.join("bin/busybox"), &fs::read(busybox)?, 0o755)?;
    // One symlink per applet, where busybox says it belongs (bin/sh, sbin/init, usr/bin/wc…).
    let applets = output(Command::new(busybox).arg("--list-full"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet == "bin/busybox" || applet.contains("..") || applet.starts_with('/') {
            continue;
        }
        let link = rootfs.join(applet);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink("/bin/busybox", &link).with_context(|| format!("linking {}", link.display()))?;
    }
    ensure!(
        rootfs.join("sbin/init").is_symlink(),
        "{} has no init applet",
        busybox.display()
    );

    let sim_content = fs::read(sim)?;
    write_file(&rootfs.join("usr/bin/botserver-sim"), &sim_content, 0o755)?;
    if let Some(libs) = shared_libraries(sim)? {
        for lib in libs {
            copy_in(&rootfs, &lib, 0o755)?;
        }
    }

    let etc = rootfs.join("etc");
    write_file(&etc.join("inittab"), INITTAB.as_bytes(), 0o644)?;
    write_file(
        &etc.join("passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    write_file(&etc.join("group"), b"root:x:0:\nnogroup:x:65534:\n", 0o644)?;
    write_file(
        &etc.join("hosts"),
        b"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
        0o644,
    )?;
    // No /etc/hostname in the rootfs: LXD writes it from this template when an instance is
    // created or copied, and until then the sim falls back to the kernel hostname, which LXD
    // sets to the instance name too.
    write_file(
        &stage.join("templates/hostname.tpl"),
        b"{{ container.name }}\n",
        0o644,
    )?;
    Ok(())
}

/// sha256 over every path, type, mode, symlink target and file content under `dirs`.
pub(super) fn content_hash(stage: &Path, dirs: &[&str]) -> Result<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            out.push(path.clone());
            if path.is_dir() && !path.is_symlink() {
                walk(&path, out)?;
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    for dir in dirs {
        walk(&stage.join(dir), &mut paths)?;
    }
    paths.sort();
    let mut hash = Sha256::new();
    for path in paths {
        let meta = fs::symlink_metadata(&path)?;
        let rel = path.strip_prefix(stage).unwrap_or(&path);
        hash.update(rel.as_os_str().as_encoded_bytes());
        hash.update(format!("\0{:o}\0", meta.permissions().mode()));
        if meta.is_symlink() {
            hash.update(fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            hash.update(fs::read(&path)?);
        }
        hash.update(b"\0");
    }
    // The metadata that is not per-build (everything but creation_date) counts too.
    hash.update(metadata_yaml(0, ""));
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

pub(super) fn metadata_yaml(creation_date: u64, hash: &str) -> String {
    format!(
        "architecture: x86_64\n\
         creation_date: {creation_date}\n\
         properties:\n  \
           description: botcluster test botserver (botserver-sim on busybox)\n  \
           os: busybox\n  \
           release: botserver-sim\n  \
           {HASH_PROPERTY}: \"{hash}\"\n\
         templates:\n  \
           /etc/hostname:\n    \
             when:\n    \
             - create\n    \
             - copy\n    \
             template: hostname.tpl\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Shared libraries of an executable (ldd)

/// Whether `path` is a dynamically linked executable, and the files it loads if so
/// (shared libraries and the dynamic loader, as absolute paths).
fn shared_libraries(path: &Path) -> Result<Option<Vec<PathBuf>>> {
    let out = Command::new("ldd")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .context("running ldd (from libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if text.contains("statically linked") || err.contains("not a dynamic executable") {
        return Ok(None);
    }
    ensure!(
        out.status.success(),
        "ldd {} failed: {}",
        path.display(),
        err.trim()
    );
    parse_ldd(&text)
        .map(Some)
        .with_context(|| format!("ldd {}", path.display()))
}

/// The files named in `ldd` output. Lines look like
/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`
/// or `linux-vdso.so.1 (0x…)` (in the kernel, no file: skipped).
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let file = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        match file {
            Some(f) if f.starts_with('/') => libs.push(PathBuf::from(f)),
            Some("not") => bail!("{}", line.trim()),
            _ => {}
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inittab_brings_loopback_up_first() {
        assert_eq!(
            INITTAB.lines().next(),
            Some("::sysinit:/bin/busybox ip link set lo up")
        );
    }

    #[test]
    fn metadata_names_the_hash_and_the_hostname_template() {
        let yaml = metadata_yaml(7, "abc");
        assert!(yaml.contains("architecture: x86_64\n"));
        assert!(yaml.contains("creation_date: 7\n"));
        assert!(yaml.contains("  botcluster.content_hash: \"abc\"\n"));
        assert!(yaml.contains(
            "  /etc/hostname:\n    when:\n    - create\n    - copy\n    template: hostname.tpl\n"
        ));
    }

    #[test]
    fn ldd_output_gives_libraries_and_loader_but_not_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f01)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f03)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        let missing = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(missing.to_string().contains("libfoo.so.1 => not found"));
    }
}
