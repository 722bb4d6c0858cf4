//! Installing what LXD chores need: the `lxd` and `busybox-static` Debian packages.

use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::util::{apt_install, is_debian, is_root, say, which};

fn busybox_static_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "busybox-static"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "install ok installed")
}

pub(super) fn ensure_packages() -> Result<()> {
    let debian = is_debian();
    let mut missing = Vec::new();
    if which("lxd").is_none() {
        missing.push("lxd");
    }
    if debian && !busybox_static_installed() {
        missing.push("busybox-static");
    }
    if missing.is_empty() {
        say(
            "lxd-up",
            "packages: already installed (lxd, busybox-static)",
        );
        return Ok(());
    }
    if !(debian && is_root()) {
        bail!(
            "missing: {}. Install them with `sudo apt-get install {}` (Debian/Ubuntu) or your \
             distribution's packages, then run `cargo xtask lxd-up` again",
            missing.join(", "),
            missing.join(" ")
        );
    }
    say(
        "lxd-up",
        format!("packages: installing {}", missing.join(" ")),
    );
    apt_install("lxd-up", "packages", &missing)
}
