//! The kinds botctl handles (BotCluster, GitSource): how a command names one, where its
//! objects live in the API, and how each shows as a table row and a status page. The
//! follow loops (`crate::follow`) and the commands are written once, over [`Kind`].

use anyhow::Result;
use serde_json::Value;

use crate::client::path_of;
use crate::{gitsource, render};

/// Which kind a command names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BotCluster,
    GitSource,
}

/// What `arg` names: `gitsource/NAME` (also `gitsources/`, `gs/`) or a BotCluster
/// (`botcluster/NAME`, `botclusters/`, `bc/`, or a bare name).
pub fn target(arg: &str) -> (Kind, &str) {
    match arg.split_once('/') {
        Some(("gitsource" | "gitsources" | "gs", n)) => (Kind::GitSource, n),
        Some(("botcluster" | "botclusters" | "bc", n)) => (Kind::BotCluster, n),
        _ => (Kind::BotCluster, arg),
    }
}

impl Kind {
    /// The kind a collection word names (`get gitsources`, `get bc`), if any.
    pub fn of_word(word: &str) -> Option<Kind> {
        match word {
            "gitsources" | "gitsource" | "gs" => Some(Kind::GitSource),
            "botclusters" | "botcluster" | "bc" => Some(Kind::BotCluster),
            _ => None,
        }
    }
    /// The kind a document declares (`kind:`); BotCluster when absent.
    pub fn of_document(doc: &Value) -> Kind {
        match doc.get("kind").and_then(Value::as_str) {
            Some(botcluster_api::GITSOURCE_KIND) => Kind::GitSource,
            _ => Kind::BotCluster,
        }
    }
    /// The collection's name in URL paths: `botclusters`, `gitsources`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::BotCluster => "botclusters",
            Kind::GitSource => "gitsources",
        }
    }
    /// How botctl prints one object's reference: `botcluster/NAME`, `gitsource/NAME`.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::BotCluster => "botcluster",
            Kind::GitSource => "gitsource",
        }
    }
    /// The kind's name in messages: `BotCluster`, `GitSource`.
    pub fn title(self) -> &'static str {
        match self {
            Kind::BotCluster => "BotCluster",
            Kind::GitSource => "GitSource",
        }
    }
    /// The command that lists this kind, for "not found" messages.
    pub fn list_command(self) -> &'static str {
        match self {
            Kind::BotCluster => "botctl get",
            Kind::GitSource => "botctl get gitsources",
        }
    }
    /// The collection path: `/api/v1/botclusters`.
    pub fn collection(self) -> String {
        format!("/api/v1/{}", self.plural())
    }
    /// The URL path of one object, its name checked and encoded.
    pub fn object_path(self, name: &str) -> Result<String> {
        path_of(self.plural(), name)
    }
    /// The table of `botctl get`.
    pub fn table(self, items: &[Value]) -> String {
        match self {
            Kind::BotCluster => render::table(items),
            Kind::GitSource => gitsource::table(items),
        }
    }
    /// One row of `botctl get -w` for a watch event, under the header when `header`.
    pub fn watch_row(self, event: &str, obj: &Value, header: bool) -> String {
        match self {
            Kind::BotCluster => render::watch_row(event, obj, header),
            Kind::GitSource => gitsource::watch_row(event, obj, header),
        }
    }
    /// The page of `botctl status`, with the object's newest events.
    pub fn status_page(self, obj: &Value, events: &[Value]) -> String {
        match self {
            Kind::BotCluster => render::status(obj, events),
            Kind::GitSource => gitsource::status(obj, events),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_its_kind_and_a_bare_name_is_a_botcluster() {
        assert_eq!(target("gitsource/fleet"), (Kind::GitSource, "fleet"));
        assert_eq!(target("gs/fleet"), (Kind::GitSource, "fleet"));
        assert_eq!(target("bc/web"), (Kind::BotCluster, "web"));
        assert_eq!(target("web"), (Kind::BotCluster, "web"));
        // An unknown prefix stays in the name, whose check then names the '/'.
        assert_eq!(target("pod/web"), (Kind::BotCluster, "pod/web"));
        assert_eq!(Kind::of_word("gitsources"), Some(Kind::GitSource));
        assert_eq!(Kind::of_word("web"), None);
    }
}
