//! What one caller may see and use (`authorization:`): each list cut down
//! to the items the caller's roles allow, and `-32016` for a request of an
//! item they do not (the front door answers it with HTTP 403 and
//! `insufficient_scope`). The caller is the session's: a session is only
//! ever used with the subject and roles that opened it. Without `authorization:` everything is allowed.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::Gateway;
use crate::auth::{Item, ItemKind};
use crate::backend::ListKind;
use crate::call::Method;
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
        self.check_named_access(session, kind, self.backends[backend].name(), name)
    }

    /// [`Self::check_access`] of an item of the backend named `backend_name`.
    pub(super) fn check_named_access(
        &self,
        session: &Session,
        kind: ItemKind,
        backend_name: &str,
        name: &str,
    ) -> Result<(), ErrorObject> {
        let Some(policy) = &self.access else {
            return Ok(());
        };
        let roles = roles_of(session);
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

    /// The refusal a call of `method` with `params` would get for want of
    /// access, found before it runs: for an answer that goes out as an
    /// event stream, whose HTTP status is sent before the call ends.
    pub(crate) fn refused_access(
        &self,
        session: &Session,
        method: &str,
        params: Option<&Value>,
    ) -> Option<ErrorObject> {
        self.access.as_ref()?;
        let method = Method::parse(method).filter(|m| m.is_routed())?;
        let tool = params.and_then(|p| p.get("name")).and_then(Value::as_str);
        if let Some(tool) = tool.filter(|_| method == Method::ToolsCall)
            && let Some(admin) = self.admin_tool(tool)
        {
            return self.admin_access(session, admin).err();
        }
        self.resolve(session, method, params.cloned(), None)
            .err()
            .filter(|error| error.code == FORBIDDEN)
    }

    /// Whether `session`'s caller may hear backend `backend` (its log
    /// messages) and set its log level: only if it may use at least one
    /// item of the primary the backend serves.
    pub(super) fn may_hear(&self, session: &Session, backend: usize) -> bool {
        self.roles_may_hear(roles_of(session), backend)
    }

    /// The sessions that may hear backend `backend` (see [`Self::may_hear`]),
    /// judged once per set of roles: a chatty backend's log messages must
    /// not cost a scan of the catalog for every session.
    pub(super) fn hearing(&self, sessions: &[Arc<Session>], backend: usize) -> Vec<Arc<Session>> {
        let mut judged: HashMap<&[String], bool> = HashMap::new();
        sessions
            .iter()
            .filter(|session| {
                let roles = roles_of(session);
                *judged
                    .entry(roles)
                    .or_insert_with(|| self.roles_may_hear(roles, backend))
            })
            .cloned()
            .collect()
    }

    fn roles_may_hear(&self, roles: &[String], backend: usize) -> bool {
        let Some(policy) = &self.access else {
            return true;
        };
        let primary_name = self.backends[backend].primary_name();
        let Some(&primary) = self.by_name.get(primary_name) else {
            return false;
        };
        let catalog = self.catalog();
        ListKind::ALL.into_iter().any(|kind| {
            catalog.owned_items(kind).any(|(_, owner)| {
                owner.backend == primary
                    && policy.allows(
                        roles,
                        Item {
                            kind: item_kind(kind),
                            backend: primary_name,
                            name: &owner.name,
                        },
                    )
            })
        })
    }

    /// The items of one list that `session`'s caller may see.
    pub(super) fn visible_items(&self, session: &Session, kind: ListKind) -> Vec<Value> {
        let catalog = self.catalog();
        let Some(policy) = &self.access else {
            return catalog.items(kind).to_vec();
        };
        let roles = roles_of(session);
        let kind_of_item = item_kind(kind);
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

/// What kind of item a list holds, for access rules.
fn item_kind(kind: ListKind) -> ItemKind {
    match kind {
        ListKind::Tools => ItemKind::Tool,
        ListKind::Resources | ListKind::ResourceTemplates => ItemKind::Resource,
        ListKind::Prompts => ItemKind::Prompt,
    }
}

/// The roles of the session's caller (none without `auth:`).
fn roles_of(session: &Session) -> &[String] {
    session
        .caller()
        .map_or(&[], |caller| caller.roles.as_slice())
}
