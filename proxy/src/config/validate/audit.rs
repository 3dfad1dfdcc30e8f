//! The `audit` section: where the audit log goes, whether it holds the
//! calls' arguments, and how many lines may wait for the writer.

use super::super::raw::RawAudit;
use super::super::{AuditConfig, AuditTarget, ConfigError};
use super::{Validator, child, key};

/// `audit.queue` when not given.
const DEFAULT_QUEUE: usize = 10_000;

impl Validator<'_> {
    pub(super) fn audit(&self, raw: RawAudit) -> Result<AuditConfig, ConfigError> {
        let path = [key("audit")];
        let to = match raw.to.as_deref() {
            None | Some("stdout") => AuditTarget::Stdout,
            Some("") => return Err(self.error(&child(&path, "to"), "must not be empty")),
            Some(file) => AuditTarget::File(self.base_dir.join(file)),
        };
        let queue = raw.queue.unwrap_or(DEFAULT_QUEUE);
        if queue == 0 {
            return Err(self.error(&child(&path, "queue"), "must be at least 1"));
        }
        Ok(AuditConfig {
            to,
            include_arguments: raw.include_arguments.unwrap_or(false),
            queue,
        })
    }
}
