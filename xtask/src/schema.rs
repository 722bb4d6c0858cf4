//! `cargo xtask schema [--check]`: writes (or checks) manifests/botcluster.schema.json.

use anyhow::{bail, Context, Result};

use crate::project_root;

pub fn run(args: &[&str]) -> Result<()> {
    let path = project_root().join("manifests/botcluster.schema.json");
    let want = botcluster_api::schema::botcluster_schema_json();
    let check = args.contains(&"--check");
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == want {
        println!("{} is up to date", path.display());
        return Ok(());
    }
    if check {
        bail!(
            "{} is stale; run `cargo xtask schema` and commit the result",
            path.display()
        );
    }
    std::fs::write(&path, want).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
