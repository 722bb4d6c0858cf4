//! `cargo xtask openapi [--check]`: writes (or checks) manifests/openapi.json, the document the
//! server serves at /api/v1/openapi.json.

use anyhow::{bail, Context, Result};

use crate::project_root;

pub fn run(args: &[&str]) -> Result<()> {
    let path = project_root().join("manifests/openapi.json");
    let want = botcluster_server::openapi::openapi_json();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == want {
        println!("{} is up to date", path.display());
        return Ok(());
    }
    if args.contains(&"--check") {
        bail!(
            "{} is stale; run `cargo xtask openapi` and commit the result",
            path.display()
        );
    }
    std::fs::write(&path, want).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
