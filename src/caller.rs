//! Who is calling: the identity every stored thing (sessions, images, usage) belongs to.

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// A stable, non-secret identifier of the caller's key (never the key itself).
    pub key_id: String,
    pub tier: String,
    /// Scopes, models and limit overrides of the key (docs/keys.md); default: none.
    pub settings: std::sync::Arc<crate::auth::settings::KeySettings>,
    /// Whether the key has a spending limit (its responses then say what is left).
    pub budgeted: bool,
}

impl Caller {
    /// A caller with the tier's limits and no per-key settings.
    pub fn of_tier(key_id: impl Into<String>, tier: impl Into<String>) -> Self {
        Self {
            key_id: key_id.into(),
            tier: tier.into(),
            settings: Default::default(),
            budgeted: false,
        }
    }
}

/// What a pipeline run knows about the request it serves.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub caller: Caller,
    /// The caller's in-flight slot, held as long as any clone of this context lives (the
    /// work's tasks hold one). `None` only on routes without limits.
    pub slot: Option<crate::limits::Slot>,
    /// The request's share of the per-minute budget, charged by its work's cost.
    pub budget: Option<crate::limits::Budget>,
}
