//! `cargo xtask schema [--check]`: writes (or checks) the JSON Schemas in manifests/:
//! `botcluster.schema.json` and `gitsource.schema.json`.

use anyhow::{bail, Context, Result};

use crate::project_root;

pub fn run(args: &[&str]) -> Result<()> {
    let check = args.contains(&"--check");
    for (file, want) in [
        (
            "manifests/botcluster.schema.json",
            botcluster_api::schema::botcluster_schema_json(),
        ),
        (
            "manifests/gitsource.schema.json",
            botcluster_api::gitsource::gitsource_schema_json(),
        ),
    ] {
        let path = project_root().join(file);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have == want {
            println!("{} is up to date", path.display());
            continue;
        }
        if check {
            bail!(
                "{} is stale; run `cargo xtask schema` and commit the result",
                path.display()
            );
        }
        std::fs::write(&path, want).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
