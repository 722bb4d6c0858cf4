//! Server-wide endpoints: `/1.0`, projects and `/1.0/metrics`.

use super::Client;
use crate::types::Server;
use crate::{Error, Metrics, Result};

impl Client {
    /// `GET /1.0`: API extensions, server version, kernel, storage…
    ///
    /// # Errors
    /// Transport and LXD errors.
    pub async fn server(&self) -> Result<Server> {
        self.get_sync(self.url(&[], &[], false)?).await
    }

    /// Whether `project` exists (`GET /1.0/projects/NAME`).
    ///
    /// # Errors
    /// Transport and LXD errors other than 404.
    pub async fn project_exists(&self, project: &str) -> Result<bool> {
        let url = self.url(&["projects", project], &[], false)?;
        match self.get_sync::<serde_json::Value>(url).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /1.0/metrics`: Prometheus text for every instance of every project.
    ///
    /// # Errors
    /// Transport and LXD errors.
    pub async fn metrics_text(&self) -> Result<String> {
        let url = self.url(&["metrics"], &[], false)?;
        let reply = self.get_raw(url).await?;
        String::from_utf8(reply.body).map_err(|e| Error::Protocol {
            request: reply.request,
            message: format!("metrics are not UTF-8: {e}"),
        })
    }

    /// [`Client::metrics_text`], parsed into per-instance CPU seconds and memory bytes.
    ///
    /// # Errors
    /// As [`Client::metrics_text`].
    pub async fn metrics(&self) -> Result<Metrics> {
        Ok(Metrics::parse(&self.metrics_text().await?))
    }
}
