//! Images and image aliases: list, read, import a unified tarball, alias, delete.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;

use super::request::header_value;
use super::Client;
use crate::types::{Image, ImageAlias};
use crate::{Error, Result};

/// Options of [`Client::import_image`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageImport {
    /// Original file name, stored in the image record (`X-LXD-filename`).
    pub filename: Option<String>,
    /// Whether untrusted clients may use the image (`X-LXD-public`).
    pub public: bool,
    /// Aliases to create for the image once imported.
    pub aliases: Vec<String>,
}

impl Client {
    /// `GET /1.0/images?recursion=1`.
    ///
    /// # Errors
    /// Transport and LXD errors.
    pub async fn list_images(&self) -> Result<Vec<Image>> {
        self.get_sync(self.url(&["images"], &[("recursion", "1")], true)?)
            .await
    }

    /// `GET /1.0/images/FINGERPRINT`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such image.
    pub async fn get_image(&self, fingerprint: &str) -> Result<Image> {
        self.get_sync(self.url(&["images", fingerprint], &[], true)?)
            .await
    }

    /// `GET /1.0/images/aliases/NAME`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such alias.
    pub async fn get_image_alias(&self, name: &str) -> Result<ImageAlias> {
        self.get_sync(self.url(&["images", "aliases", name], &[], true)?)
            .await
    }

    /// `POST /1.0/images/aliases`: points alias `name` at image `target`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when the alias exists (LXD answers 409).
    pub async fn create_image_alias(
        &self,
        name: &str,
        target: &str,
        description: &str,
    ) -> Result<()> {
        let url = self.url(&["images", "aliases"], &[], true)?;
        let body = serde_json::json!({"name": name, "target": target, "description": description});
        let (reply, env) = self.call(Method::POST, url, Some(&body), None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `PUT /1.0/images/aliases/NAME`: points the existing alias `name` at image
    /// `target` and replaces its description (moving an alias to a new build).
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such alias (create it with
    /// [`Client::create_image_alias`]).
    pub async fn put_image_alias(&self, name: &str, target: &str, description: &str) -> Result<()> {
        let url = self.url(&["images", "aliases", name], &[], true)?;
        let body = serde_json::json!({"target": target, "description": description});
        let (reply, env) = self.call(Method::PUT, url, Some(&body), None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `DELETE /1.0/images/FINGERPRINT`, then wait for the operation.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such image.
    pub async fn delete_image(&self, fingerprint: &str) -> Result<()> {
        let url = self.url(&["images", fingerprint], &[], true)?;
        let (reply, env) = self.call::<()>(Method::DELETE, url, None, None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `POST /1.0/images` with a **unified** image tarball as the body (a tar,
    /// optionally compressed, holding `metadata.yaml` and `rootfs/`), then waits
    /// for the operation and creates `opts.aliases`. Returns the fingerprint
    /// (SHA-256 of the tarball).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when an image with the same fingerprint exists
    /// (or, from alias creation, when an alias is taken); [`Error::Other`] for a
    /// tarball LXD cannot use.
    pub async fn import_image(
        &self,
        tarball: impl Into<Vec<u8>>,
        opts: &ImageImport,
    ) -> Result<String> {
        let url = self.url(&["images"], &[], true)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Some(name) = &opts.filename {
            headers.insert(
                HeaderName::from_static("x-lxd-filename"),
                header_value(name)?,
            );
        }
        headers.insert(
            HeaderName::from_static("x-lxd-public"),
            HeaderValue::from_static(if opts.public { "true" } else { "false" }),
        );
        let body = reqwest::Body::from(tarball.into());
        let reply = self
            .execute(Method::POST, url, headers, Some(body), self.request_timeout)
            .await?;
        let env = reply.envelope()?;
        let request = reply.request.clone();
        let op = self.complete(reply, env).await?;
        let fingerprint = op
            .as_ref()
            .and_then(|op| op.metadata.get("fingerprint"))
            .and_then(|f| f.as_str())
            .map(str::to_owned)
            .ok_or_else(|| Error::Protocol {
                request,
                message: "image import finished without a fingerprint".into(),
            })?;
        for alias in &opts.aliases {
            self.create_image_alias(alias, &fingerprint, "").await?;
        }
        Ok(fingerprint)
    }
}
