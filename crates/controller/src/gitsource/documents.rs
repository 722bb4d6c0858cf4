//! Files at a commit → the BotClusters they describe, all validated before anything is
//! applied (pure). One bad document fails the whole revision; every problem is reported
//! with its file, document and field.

use std::collections::BTreeMap;
use std::fmt;

use botcluster_api::gitsource::{GITSOURCE_KIND, OWNER_LABEL};
use botcluster_api::yaml::{botcluster_from_value, parse_values, Limits};
use botcluster_api::{BotClusterSpec, BOTCLUSTER_KIND};
use git_client::File;
use serde_json::Value;

/// One BotCluster a revision describes.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Its name.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// Its 0-based document index in the file.
    pub index: usize,
    /// Its labels (without the owner label, which the pass adds).
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// The spec with defaults applied, as the API stores it.
    pub spec: Value,
}

/// A problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocError {
    /// The file.
    pub file: String,
    /// The 0-based document, when the problem is in one.
    pub index: Option<usize>,
    /// The field path (empty: the document or file as a whole).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(i) = self.index {
            write!(f, " (document {})", i + 1)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads every document of `files`. `Ok` only when all of them are valid BotClusters with
/// distinct names; otherwise every problem found.
pub fn read(files: &[File]) -> Result<Vec<Desired>, Vec<DocError>> {
    let mut out: Vec<Desired> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for f in files {
        let err = |index: Option<usize>, field: &str, message: String| DocError {
            file: f.path.clone(),
            index,
            field: field.into(),
            message,
        };
        let Ok(text) = std::str::from_utf8(&f.content) else {
            errors.push(err(None, "", "is not UTF-8 text".into()));
            continue;
        };
        let values = match parse_values(text, Limits::default()) {
            Ok(v) => v,
            Err(e) => {
                errors.push(err(None, "", e.to_string()));
                continue;
            }
        };
        for (index, v) in values.into_iter().enumerate() {
            let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind == GITSOURCE_KIND {
                errors.push(err(
                    Some(index),
                    "kind",
                    "a GitSource is not applied from Git; apply it with `botctl apply`".into(),
                ));
                continue;
            }
            if kind != BOTCLUSTER_KIND {
                errors.push(err(Some(index), "kind", format!("{kind:?} is not a kind this repository may hold; use kind: {BOTCLUSTER_KIND}")));
                continue;
            }
            let bc = match botcluster_from_value(v) {
                Ok(bc) => bc,
                Err(e) => {
                    errors.extend(
                        e.0.into_iter()
                            .map(|fe| err(Some(index), &fe.field, fe.message)),
                    );
                    continue;
                }
            };
            if bc.metadata.labels.contains_key(OWNER_LABEL) {
                errors.push(err(
                    Some(index),
                    &format!("metadata.labels.{OWNER_LABEL}"),
                    "is set by the operator; remove it from the file".into(),
                ));
                continue;
            }
            let name = bc.metadata.name.clone();
            if let Some(first) = seen.get(&name) {
                errors.push(err(
                    Some(index),
                    "metadata.name",
                    format!("{name:?} is also defined in {first}; each BotCluster once"),
                ));
                continue;
            }
            seen.insert(name.clone(), format!("{} (document {})", f.path, index + 1));
            let spec = match serde_json::to_value(&bc.spec) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(err(Some(index), "spec", e.to_string()));
                    continue;
                }
            };
            out.push(Desired {
                name,
                file: f.path.clone(),
                index,
                labels: bc.metadata.labels,
                annotations: bc.metadata.annotations,
                spec,
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Host ports the revision's clusters would share, with each other or with `others` (the
/// stored clusters the revision leaves in place, by name): one problem per clash, at the
/// file, document and field of the revision's side. The rules are the API's
/// ([`botcluster_api::ports::clashes`]), so Git cannot store what `botctl apply` refuses.
pub fn port_clashes(
    desired: &[Desired],
    others: &[(String, BotClusterSpec)],
    reserved: &botcluster_api::ports::ReservedPorts,
) -> Vec<DocError> {
    let specs: Vec<Option<BotClusterSpec>> = desired
        .iter()
        .map(|d| serde_json::from_value(d.spec.clone()).ok())
        .collect();
    let mut errors = Vec::new();
    for (i, d) in desired.iter().enumerate() {
        let Some(spec) = &specs[i] else { continue };
        // Earlier documents of the revision (each pair once), then what stays stored.
        let earlier = desired[..i]
            .iter()
            .zip(&specs[..i])
            .filter_map(|(e, s)| Some((e.name.as_str(), s.as_ref()?)));
        let stored = others.iter().map(|(n, s)| (n.as_str(), s));
        let clashes = botcluster_api::ports::clashes(&d.name, spec, earlier.chain(stored));
        let reserved = botcluster_api::ports::reserved_clashes(spec, reserved);
        for fe in clashes.into_iter().chain(reserved) {
            errors.push(DocError {
                file: d.file.clone(),
                index: Some(d.index),
                field: fe.field,
                message: fe.message,
            });
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> File {
        File {
            path: path.into(),
            content: text.as_bytes().to_vec(),
        }
    }
    const A: &str = "apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata: {name: a}\nspec: {image: img, replicas: 1}\n";

    #[test]
    fn one_bad_document_fails_the_revision_naming_file_document_and_field() {
        let files = [
            file("clusters/a.yaml", A),
            file("clusters/b.yaml", "apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata: {name: b}\nspec: {image: img, replicas: many}\n"),
        ];
        let errs = read(&files).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        let text = errs[0].to_string();
        assert!(
            text.starts_with("clusters/b.yaml (document 1): spec.replicas: "),
            "{text}"
        );
    }

    #[test]
    fn broken_yaml_duplicate_names_and_foreign_kinds_are_each_reported() {
        let files = [
            file("a.yaml", A),
            file("b.yaml", "a: [unclosed\n"),
            file("c.yml", A),
            file("d.yaml", "apiVersion: botcluster.io/v1alpha1\nkind: GitSource\nmetadata: {name: x}\nspec: {url: /x}\n"),
        ];
        let errs: Vec<String> = read(&files)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("b.yaml: not valid YAML"), "{errs:?}");
        assert!(
            errs[1].contains("c.yml (document 1): metadata.name")
                && errs[1].contains("a.yaml (document 1)"),
            "{errs:?}"
        );
        assert!(errs[2].contains("d.yaml (document 1): kind"), "{errs:?}");
    }

    #[test]
    fn valid_files_give_specs_with_defaults() {
        let got = read(&[file("x/a.yaml", A)]).unwrap();
        assert_eq!(got[0].name, "a");
        assert_eq!(got[0].spec["replicas"], 1);
        assert!(
            got[0].spec.get("resources").is_some(),
            "defaults applied: {}",
            got[0].spec
        );
    }

    #[test]
    fn host_ports_shared_within_the_revision_or_with_a_stored_cluster_are_named() {
        let doc = |name: &str, ports: &str| {
            format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata: {{name: {name}}}\nspec: {{image: img, hostPorts: {ports}}}\n")
        };
        let files = [
            file("clusters/a.yaml", &doc("a", "{start: 20000, end: 20009}")),
            file("clusters/b.yaml", &doc("b", "{start: 20005, end: 20014}")),
            file("clusters/c.yaml", &doc("c", "{start: 30000, end: 30009}")),
        ];
        let desired = read(&files).unwrap();
        let stored: BotClusterSpec = serde_json::from_value(serde_json::json!({
            "image": "img", "hostPorts": {"start": 30009, "end": 30010}}))
        .unwrap();
        let none = Default::default();
        let errs = port_clashes(&desired, &[("by-hand".into(), stored)], &none);
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].starts_with("clusters/b.yaml (document 1): spec.hostPorts: ")
                && text[0].contains("\"a\""),
            "{text:?}"
        );
        assert!(
            text[1].starts_with("clusters/c.yaml (document 1): spec.hostPorts: ")
                && text[1].contains("\"by-hand\""),
            "{text:?}"
        );
        // Apart, nothing; and a stored older version of a revision's own cluster is itself.
        let own: BotClusterSpec = serde_json::from_value(serde_json::json!({
            "image": "img", "hostPorts": {"start": 30000, "end": 30009}}))
        .unwrap();
        assert!(port_clashes(&desired[2..], &[("c".into(), own)], &none).is_empty());
        // The operator's own ports, as the API's PUT refuses them.
        let reserved = botcluster_api::ports::ReservedPorts {
            operator_range: Some((30005, 30100)),
            api: None,
        };
        let errs = port_clashes(&desired[2..], &[], &reserved);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].to_string().contains("--port-range"), "{}", errs[0]);
    }
}
