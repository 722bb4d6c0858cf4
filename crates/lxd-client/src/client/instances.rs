//! Instance endpoints: list, read, create, change, start/stop and delete.

use reqwest::header::ETAG;
use reqwest::Method;

use super::Client;
use crate::types::{
    ETag, Instance, InstancePatch, InstancePut, InstanceState, InstanceStatePut, InstancesPost,
};
use crate::{Error, Filter, Result};

impl Client {
    /// `GET /1.0/instances?recursion=1[&filter=…]`: full instance objects, in one
    /// request (about 10 ms for 20 instances on LXD 5.0.2).
    ///
    /// The filter runs on the server; see [`Filter`] for its (case-insensitive)
    /// matching rules.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unusable filter key; LXD answers a
    /// malformed filter with [`Error::Other`] status 500.
    pub async fn list_instances(&self, filter: Option<&Filter>) -> Result<Vec<Instance>> {
        self.list_instances_query(filter, false).await
    }

    /// Like [`Client::list_instances`], across all projects (`all-projects=true`);
    /// each instance's `project` says where it lives.
    ///
    /// # Errors
    /// As [`Client::list_instances`].
    pub async fn list_instances_all_projects(
        &self,
        filter: Option<&Filter>,
    ) -> Result<Vec<Instance>> {
        self.list_instances_query(filter, true).await
    }

    async fn list_instances_query(
        &self,
        filter: Option<&Filter>,
        all_projects: bool,
    ) -> Result<Vec<Instance>> {
        let filter = match filter {
            Some(f) if !f.is_empty() => Some(f.to_query_value()?),
            _ => None,
        };
        let mut query = vec![("recursion", "1")];
        if let Some(f) = &filter {
            query.push(("filter", f));
        }
        if all_projects {
            query.push(("all-projects", "true"));
        }
        self.get_sync(self.url(&["instances"], &query, !all_projects)?)
            .await
    }

    /// `GET /1.0/instances/NAME`: the instance and its ETag (for `If-Match`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such instance.
    pub async fn get_instance(&self, name: &str) -> Result<(Instance, ETag)> {
        let url = self.url(&["instances", name], &[], true)?;
        let (reply, env) = self.call::<()>(Method::GET, url, None, None).await?;
        let etag = reply
            .headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|s| ETag(s.to_owned()))
            .ok_or_else(|| Error::Protocol {
                request: reply.request.clone(),
                message: "no ETag header".into(),
            })?;
        let instance = reply.decode(env.metadata)?;
        Ok((instance, etag))
    }

    /// `POST /1.0/instances`, then waits for the operation. The instance is
    /// created **stopped**; start it with [`Client::change_state`].
    ///
    /// # Errors
    /// - [`Error::AlreadyExists`] when the name is taken (LXD reports it through
    ///   the operation, not as HTTP 409);
    /// - [`Error::NotFound`] when the image alias does not exist;
    /// - [`Error::Other`] 400 for an invalid name, 500 for invalid config/devices.
    pub async fn create_instance(&self, post: &InstancesPost) -> Result<()> {
        self.create_instance_on(post, None).await
    }

    /// [`Client::create_instance`] on a chosen cluster member (`POST
    /// /1.0/instances?target=MEMBER`); `None` lets LXD choose (a standalone server ignores
    /// placement).
    ///
    /// # Errors
    /// As [`Client::create_instance`]; an unknown member is [`Error::Other`] with LXD's words.
    pub async fn create_instance_on(
        &self,
        post: &InstancesPost,
        target: Option<&str>,
    ) -> Result<()> {
        let query: Vec<(&str, &str)> = target.map(|t| ("target", t)).into_iter().collect();
        let url = self.url(&["instances"], &query, true)?;
        let (reply, env) = self.call(Method::POST, url, Some(post), None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `PATCH /1.0/instances/NAME`: merge config keys and devices (see
    /// [`InstancePatch`] for the exact merge rules). Synchronous on LXD 5.0.2;
    /// waits for the operation if a server answers asynchronously.
    ///
    /// With `if_match`, LXD refuses the change if the instance changed since that
    /// ETag was read.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] on an ETag mismatch, [`Error::NotFound`],
    /// [`Error::Other`] 500 for invalid config.
    pub async fn patch_instance(
        &self,
        name: &str,
        patch: &InstancePatch,
        if_match: Option<&ETag>,
    ) -> Result<()> {
        let url = self.url(&["instances", name], &[], true)?;
        let (reply, env) = self.call(Method::PATCH, url, Some(patch), if_match).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `PUT /1.0/instances/NAME`: replace config, devices and profiles entirely,
    /// then wait for the operation. Keys and devices not in `put` are removed;
    /// this is the way to remove a device.
    ///
    /// # Errors
    /// As [`Client::patch_instance`].
    pub async fn put_instance(
        &self,
        name: &str,
        put: &InstancePut,
        if_match: Option<&ETag>,
    ) -> Result<()> {
        let url = self.url(&["instances", name], &[], true)?;
        let (reply, env) = self.call(Method::PUT, url, Some(put), if_match).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `PUT /1.0/instances/NAME/state`: start, stop, restart, freeze or unfreeze,
    /// then wait for the operation.
    ///
    /// # Errors
    /// [`Error::AlreadyRunning`] / [`Error::AlreadyStopped`] for no-op changes
    /// (treat them as success when converging), [`Error::NotFound`], and the
    /// operation's failure (e.g. a proxy device that cannot bind) as
    /// [`Error::Other`].
    pub async fn change_state(&self, name: &str, state: &InstanceStatePut) -> Result<()> {
        let url = self.url(&["instances", name, "state"], &[], true)?;
        let (reply, env) = self.call(Method::PUT, url, Some(state), None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `GET /1.0/instances/NAME/state`: status, memory, CPU, processes, network.
    /// Costs about 90 ms per call on LXD 5.0.2; prefer [`Client::metrics`] for
    /// many instances.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such instance.
    pub async fn get_instance_state(&self, name: &str) -> Result<InstanceState> {
        self.get_sync(self.url(&["instances", name, "state"], &[], true)?)
            .await
    }

    /// `DELETE /1.0/instances/NAME`, then wait for the operation.
    ///
    /// # Errors
    /// [`Error::InstanceRunning`] when it is running (stop it first),
    /// [`Error::NotFound`] when it does not exist.
    pub async fn delete_instance(&self, name: &str) -> Result<()> {
        let url = self.url(&["instances", name], &[], true)?;
        let (reply, env) = self.call::<()>(Method::DELETE, url, None, None).await?;
        self.complete(reply, env).await.map(drop)
    }
}
