//! Profile endpoints: reading a profile.

use super::Client;
use crate::types::Profile;
use crate::Result;

impl Client {
    /// `GET /1.0/profiles/NAME`: the profile's config and devices (in the client's
    /// project).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such profile.
    pub async fn get_profile(&self, name: &str) -> Result<Profile> {
        self.get_sync(self.url(&["profiles", name], &[], true)?)
            .await
    }
}
