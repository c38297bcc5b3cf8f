//! The handler contract: what a handler is given ([`Ctx`]) and what it returns
//! ([`Plan`]). Handlers are pure: they read the state under its lock and decide;
//! the pipeline appends what they decided, and runs database work (a
//! [`crate::lease`] plan) once the lock is released.

use super::Response;
use crate::Secret;
use crate::auth::AclCache;
use crate::auth::keys::Keys;
use crate::auth::policy::ROOT_POLICY;
use crate::event::{Event, Operation};
use crate::state::{State, Token};

/// Who is asking: the token behind the request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) token: Token,
    /// The presented secret: needed by `*-self` handlers, never stored.
    pub(crate) secret: String,
}

impl Caller {
    pub(super) fn is_root(&self) -> bool {
        self.token.policies.iter().any(|p| p == ROOT_POLICY)
    }
}

/// What a handler decided: the events that make it so, and the reply.
#[derive(Debug, Default)]
pub(crate) struct Handled {
    pub(crate) events: Vec<Event>,
    pub(crate) response: Response,
    /// An issued credential's login, kept out of `response` until the reply is
    /// built: a JSON reply puts it in `data`; a typed one hands the
    /// [`Secret`] over as it is, never copied into a JSON string.
    pub(crate) login: Option<Login>,
}

/// The username and password of an issued credential.
#[derive(Debug)]
pub(crate) struct Login {
    pub(crate) username: String,
    pub(crate) password: Secret,
}

/// What a request needs done once the state lock is released: most handlers are
/// finished (`Done`); database work runs outside the lock.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per request, on the stack, for a moment
pub(crate) enum Plan {
    Done(Handled),
    /// Connect with this configuration first; log it only if that works.
    VerifyThenWrite(Box<crate::event::ConnectionWritten>),
    Issue(Box<crate::lease::IssuePlan>),
    Revoke(Box<crate::lease::RevokePlan>),
    /// `revoke-force`: revoke each; forget only those the database refuses.
    RevokeForce(Vec<crate::lease::RevokePlan>),
    Renew(Box<crate::lease::RenewPlan>),
    RotateRoot(Box<crate::lease::RotatePlan>),
    /// Close the connection's pool; the next use reconnects from the stored config.
    Reset(Box<crate::event::ConnectionWritten>),
}

/// Everything a handler needs.
pub(crate) struct Ctx<'a> {
    pub(crate) state: &'a State,
    pub(crate) keys: &'a Keys,
    pub(crate) caller: &'a Caller,
    pub(crate) now_ms: i64,
    pub(crate) operation: Operation,
    /// Whether the caller holds `sudo` on the path (root always does).
    pub(crate) sudo: bool,
    /// The engine-wide lease limit (0 = none).
    pub(crate) lease_count_max: u64,
    /// The compiled ACLs the pipeline authorizes with (for `sys/capabilities*`).
    pub(crate) acls: &'a AclCache,
    /// Who asks: what a lease intent records of the request.
    pub(crate) asked: &'a crate::lease::Asked,
}
