//! The `admin` section: where `/admin/*` is served and the token it asks
//! for. An admin listener other hosts can reach must ask for one.

use super::super::raw::RawAdmin;
use super::super::{AdminSettings, ConfigError};
use super::{Validator, child, key};

impl Validator<'_> {
    pub(super) fn admin(&self, raw: Option<RawAdmin>) -> Result<AdminSettings, ConfigError> {
        let Some(raw) = raw else {
            return Ok(AdminSettings::default());
        };
        let path = [key("admin")];
        let token = self.secret(
            &path,
            ("token", raw.token.as_ref()),
            ("token_file", raw.token_file.as_ref()),
        )?;
        let listen = raw.listen.map(|l| l.0);
        if let Some(listen) = listen
            && !listen.ip().is_loopback()
            && token.is_none()
        {
            return Err(self.error(
                &child(&path, "listen"),
                format!(
                    "{listen} is reachable from other hosts: set \"admin.token\" (or \
                     \"admin.token_file\") so /admin/* asks for it, or listen on a loopback \
                     address such as 127.0.0.1"
                ),
            ));
        }
        Ok(AdminSettings { listen, token })
    }
}
