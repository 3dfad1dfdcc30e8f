//! What one caller may see and use (`authorization:`): each list cut down
//! to the items the caller's roles allow, and `-32016` for a request of an
//! item they do not (the front door answers it with HTTP 403 and
//! `insufficient_scope`). The caller is the session's latest one, as its
//! credential said. Without `authorization:` everything is allowed.

use serde_json::{Value, json};

use super::Gateway;
use crate::auth::{Item, ItemKind};
use crate::backend::ListKind;
use crate::error_codes::FORBIDDEN;
use crate::jsonrpc::ErrorObject;
use crate::session::Session;

impl Gateway {
    /// Refuse `session`'s caller an item its roles do not allow. `name` is
    /// the item's name without the backend's prefix, or its URI.
    pub(super) fn check_access(
        &self,
        session: &Session,
        kind: ItemKind,
        backend: usize,
        name: &str,
    ) -> Result<(), ErrorObject> {
        let Some(policy) = &self.access else {
            return Ok(());
        };
        let caller = session.caller();
        let roles = caller.as_deref().map_or(&[][..], |c| c.roles.as_slice());
        let backend_name = self.backends[backend].name();
        let item = Item {
            kind,
            backend: backend_name,
            name,
        };
        if policy.allows(roles, item) {
            return Ok(());
        }
        let (what, shown) = match kind {
            ItemKind::Tool => ("tool", format!("{backend_name}{}{name}", self.separator)),
            ItemKind::Prompt => ("prompt", format!("{backend_name}{}{name}", self.separator)),
            ItemKind::Resource => ("resource", name.to_owned()),
        };
        let scope = policy.role_allowing(item);
        let message = match scope {
            Some(scope) => {
                format!("not authorized to use {what} {shown:?}: it needs the scope {scope:?}")
            }
            None => format!("not authorized to use {what} {shown:?}: no scope allows it"),
        };
        Err(ErrorObject::new(FORBIDDEN, message).with_data(json!({
            "reason": "insufficient_scope",
            "scope": scope,
            what: shown,
        })))
    }

    /// The items of one list that `session`'s caller may see.
    pub(super) fn visible_items(&self, session: &Session, kind: ListKind) -> Vec<Value> {
        let catalog = self.catalog();
        let Some(policy) = &self.access else {
            return catalog.items(kind).to_vec();
        };
        let caller = session.caller();
        let roles = caller.as_deref().map_or(&[][..], |c| c.roles.as_slice());
        let kind_of_item = match kind {
            ListKind::Tools => ItemKind::Tool,
            ListKind::Resources | ListKind::ResourceTemplates => ItemKind::Resource,
            ListKind::Prompts => ItemKind::Prompt,
        };
        catalog
            .owned_items(kind)
            .filter(|(_, owner)| {
                policy.allows(
                    roles,
                    Item {
                        kind: kind_of_item,
                        backend: self.backends[owner.backend].name(),
                        name: &owner.name,
                    },
                )
            })
            .map(|(item, _)| item.clone())
            .collect()
    }
}
