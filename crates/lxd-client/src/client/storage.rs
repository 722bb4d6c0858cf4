//! Storage pool endpoints: reading a pool.

use super::Client;
use crate::types::StoragePool;
use crate::Result;

impl Client {
    /// `GET /1.0/storage-pools/NAME`: the pool's driver, status and config. Pools
    /// are server-wide, so no `?project=` is sent.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such pool.
    pub async fn get_storage_pool(&self, name: &str) -> Result<StoragePool> {
        self.get_sync(self.url(&["storage-pools", name], &[], false)?)
            .await
    }
}
