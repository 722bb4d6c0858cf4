//! `cargo xtask image`: the test image imported into LXD under its alias, once per content.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Result};
use lxd_client::ImageImport;

use super::rootfs::{
    build_rootfs, build_sim, content_hash, find_busybox, metadata_yaml, write_file, HASH_PROPERTY,
};
use super::{found, short, Lxd, DEFAULT_IMAGE_ALIAS};
use crate::util::{run, say, target_dir};

/// `cargo xtask image`: build the busybox + botserver-sim test image and import it into LXD.
///
/// Guarantees: the image carries the sha256 of its content (rootfs and templates) in the
/// property `botcluster.content_hash`; when the alias already points at an image with the same
/// hash nothing is imported. When the content changed, the new image is imported, the alias
/// moved to it, and the old image deleted if no alias points at it any more.
pub fn image(args: &[&str]) -> Result<()> {
    ensure!(args.is_empty(), "image takes no arguments, got {args:?}");
    let lxd = Lxd::from_env()?;
    ensure!(
        lxd.answers(),
        "LXD does not answer on {}; run `cargo xtask lxd-up` first",
        lxd.socket.display()
    );
    build_and_import_image(&lxd)
}

fn image_alias() -> String {
    std::env::var("BOTCLUSTER_TEST_IMAGE")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE_ALIAS.to_string())
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(super) fn build_and_import_image(lxd: &Lxd) -> Result<()> {
    let alias = image_alias();
    let sim = build_sim()?;
    let busybox = find_busybox()?;
    // Per process, so two engineers running `image` at once do not build into each other.
    let scratch = Scratch(
        target_dir()
            .join("lxd-image")
            .join(std::process::id().to_string()),
    );
    let _ = fs::remove_dir_all(&scratch.0);
    let stage = scratch.0.join("stage");
    build_rootfs(&stage, &busybox, &sim)?;
    let hash = content_hash(&stage, &["rootfs", "templates"])?;

    // What the alias points at now, and whether an image with this content is already there.
    let current = found(lxd.block_on(lxd.reads.get_image_alias(&alias)))?.map(|a| a.target);
    let images = lxd.block_on(lxd.reads.list_images())?;
    let same = images
        .iter()
        .find(|img| img.properties.get(HASH_PROPERTY) == Some(&hash))
        .map(|img| img.fingerprint.clone());
    if let (Some(cur), Some(same)) = (&current, &same) {
        if cur == same {
            say(
                "image",
                format!(
                    "already imported: {alias} -> {} (content {})",
                    short(cur),
                    short(&hash)
                ),
            );
            return Ok(());
        }
    }

    let fingerprint = match same {
        Some(fp) => {
            say(
                "image",
                format!(
                    "image with content {} exists as {}; reusing it",
                    short(&hash),
                    short(&fp)
                ),
            );
            fp
        }
        None => import(lxd, &stage, &scratch.0.join("image.tar.gz"), &hash)?,
    };
    let description = format!("botcluster test image, content sha256 {hash}");
    match &current {
        Some(_) => lxd.block_on(
            lxd.writes
                .put_image_alias(&alias, &fingerprint, &description),
        )?,
        None => lxd.block_on(
            lxd.writes
                .create_image_alias(&alias, &fingerprint, &description),
        )?,
    };
    say(
        "image",
        format!(
            "alias {alias} -> {} (content {})",
            short(&fingerprint),
            short(&hash)
        ),
    );

    // The image the alias used to point at goes, unless something else still names it.
    if let Some(old) = current.filter(|old| *old != fingerprint) {
        let left = found(lxd.block_on(lxd.reads.get_image(&old)))?;
        let aliases = left.as_ref().map_or(0, |img| img.aliases.len());
        if left.is_some() && aliases == 0 {
            lxd.block_on(lxd.writes.delete_image(&old))?;
            say("image", format!("deleted superseded image {}", short(&old)));
        }
    }
    Ok(())
}

/// Tars the stage (metadata.yaml, templates/, rootfs/ — a "unified" image) and uploads it.
fn import(lxd: &Lxd, stage: &Path, tarball: &Path, hash: &str) -> Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    write_file(
        &stage.join("metadata.yaml"),
        metadata_yaml(now, hash).as_bytes(),
        0o644,
    )?;
    run(Command::new("tar")
        .args([
            "--create",
            "--gzip",
            "--sort=name",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--file",
        ])
        .arg(tarball)
        .arg("-C")
        .arg(stage)
        .args(["metadata.yaml", "templates", "rootfs"]))?;
    let bytes = fs::read(tarball)?;
    let t = Instant::now();
    say(
        "image",
        format!(
            "importing {} ({:.1} MB)",
            tarball.display(),
            bytes.len() as f64 / 1e6
        ),
    );
    // No aliases here: the caller points (or moves) the alias once the image is in.
    let fingerprint = lxd.block_on(lxd.writes.import_image(bytes, &ImageImport::default()))?;
    say(
        "image",
        format!(
            "imported {} in {:.2} s",
            short(&fingerprint),
            t.elapsed().as_secs_f64()
        ),
    );
    Ok(fingerprint)
}
