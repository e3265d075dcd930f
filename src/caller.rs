//! Who is calling: the identity every stored thing (sessions, images, usage) belongs to.

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// A stable, non-secret identifier of the caller's key (never the key itself).
    pub key_id: String,
    pub tier: String,
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
