//! Files inside instances: push (with missing parents created), directories, pull.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;

use super::request::header_value;
use super::Client;
use crate::{Error, Result};

/// How [`Client::push_file`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Replace the file (the default).
    #[default]
    Overwrite,
    /// Append to the file.
    Append,
}

/// Options of [`Client::push_file`] and [`Client::create_directory`].
///
/// `uid`/`gid` are as seen *inside* the instance; LXD maps them to host ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePush {
    /// Owner uid inside the instance (`None`: LXD's default, root).
    pub uid: Option<u32>,
    /// Owner gid inside the instance (`None`: LXD's default, root).
    pub gid: Option<u32>,
    /// Permission bits, e.g. `0o644` (`None`: LXD's default).
    pub mode: Option<u32>,
    /// Overwrite or append.
    pub write: WriteMode,
    /// Create missing parent directories (mode `0755`, same uid/gid) when LXD
    /// answers 404 for the file. Default: `true`.
    pub create_parents: bool,
}

impl Default for FilePush {
    fn default() -> Self {
        FilePush {
            uid: None,
            gid: None,
            mode: None,
            write: WriteMode::Overwrite,
            create_parents: true,
        }
    }
}

impl FilePush {
    /// Root-owned with the given mode, parents created.
    pub fn mode(mode: u32) -> Self {
        FilePush {
            mode: Some(mode),
            ..Default::default()
        }
    }
}

impl Client {
    /// `POST /1.0/instances/NAME/files?path=…`: writes `content` to `path` (absolute)
    /// inside the instance, with the owner and mode of `opts`. Works on stopped
    /// instances too, which makes it the way to seed config before a first start.
    ///
    /// With `opts.create_parents` (the default), when LXD answers 404 because a
    /// parent directory is missing, the parents are created (`X-LXD-type:
    /// directory`, mode 0755) and the push is retried once. So the common case
    /// costs one request.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a relative path, [`Error::NotFound`] for a
    /// missing instance (or missing parents without `create_parents`).
    pub async fn push_file(
        &self,
        instance: &str,
        path: &str,
        content: impl Into<Vec<u8>>,
        opts: &FilePush,
    ) -> Result<()> {
        check_absolute(path)?;
        let content = content.into();
        let first = self
            .file_post(instance, path, "file", Some(content.clone()), opts)
            .await;
        match first {
            Err(Error::NotFound { .. }) if opts.create_parents && parent_of(path).is_some() => {
                for dir in ancestors(path) {
                    let dir_opts = FilePush {
                        mode: Some(0o755),
                        ..opts.clone()
                    };
                    self.file_post(instance, &dir, "directory", None, &dir_opts)
                        .await?;
                }
                self.file_post(instance, path, "file", Some(content), opts)
                    .await
            }
            other => other,
        }
    }

    /// Creates directory `path` inside the instance (`X-LXD-type: directory`).
    /// Succeeds if it already exists. Its parent must exist.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a relative path, [`Error::NotFound`] for a
    /// missing instance or parent.
    pub async fn create_directory(
        &self,
        instance: &str,
        path: &str,
        opts: &FilePush,
    ) -> Result<()> {
        check_absolute(path)?;
        self.file_post(instance, path, "directory", None, opts)
            .await
    }

    async fn file_post(
        &self,
        instance: &str,
        path: &str,
        kind: &str,
        content: Option<Vec<u8>>,
        opts: &FilePush,
    ) -> Result<()> {
        let url = self.url(&["instances", instance, "files"], &[("path", path)], true)?;
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| -> Result<()> {
            headers.insert(HeaderName::from_static(name), header_value(&value)?);
            Ok(())
        };
        set("x-lxd-type", kind.to_owned())?;
        if let Some(uid) = opts.uid {
            set("x-lxd-uid", uid.to_string())?;
        }
        if let Some(gid) = opts.gid {
            set("x-lxd-gid", gid.to_string())?;
        }
        if let Some(mode) = opts.mode {
            set("x-lxd-mode", format!("{mode:04o}"))?;
        }
        if kind == "file" {
            let write = match opts.write {
                WriteMode::Overwrite => "overwrite",
                WriteMode::Append => "append",
            };
            set("x-lxd-write", write.to_owned())?;
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
        }
        let body = content.map(reqwest::Body::from);
        let reply = self
            .execute(Method::POST, url, headers, body, self.request_timeout)
            .await?;
        let env = reply.envelope()?;
        self.complete(reply, env).await.map(drop)
    }

    /// `DELETE /1.0/instances/NAME/files?path=…`: removes a file (or an empty
    /// directory) inside the instance; works on stopped instances too.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a relative path, [`Error::NotFound`] for a
    /// missing instance or file.
    pub async fn delete_file(&self, instance: &str, path: &str) -> Result<()> {
        check_absolute(path)?;
        let url = self.url(&["instances", instance, "files"], &[("path", path)], true)?;
        let (reply, env) = self.call::<()>(Method::DELETE, url, None, None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `GET /1.0/instances/NAME/files?path=…`: the content of a file inside the
    /// instance.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing instance or file.
    pub async fn pull_file(&self, instance: &str, path: &str) -> Result<Vec<u8>> {
        check_absolute(path)?;
        let url = self.url(&["instances", instance, "files"], &[("path", path)], true)?;
        Ok(self.get_raw(url).await?.body)
    }
}

fn check_absolute(path: &str) -> Result<()> {
    if path.starts_with('/') && path.len() > 1 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "instance file path {path:?} must be absolute"
        )))
    }
}

fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    let idx = trimmed.rfind('/')?;
    (idx > 0).then(|| &trimmed[..idx])
}

/// The directories above `path`, outermost first: `/a/b/c` → `/a`, `/a/b`.
fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        current.push('/');
        current.push_str(part);
        out.push(current.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_listed_outermost_first() {
        assert_eq!(
            ancestors("/etc/bot/conf.d/x.toml"),
            ["/etc", "/etc/bot", "/etc/bot/conf.d"]
        );
        assert!(ancestors("/x").is_empty());
        assert_eq!(parent_of("/x"), None);
        assert_eq!(parent_of("/a/b"), Some("/a"));
    }

    #[test]
    fn relative_paths_are_rejected() {
        assert!(check_absolute("etc/x").is_err());
        assert!(check_absolute("/").is_err());
        assert!(check_absolute("/etc/x").is_ok());
    }
}
