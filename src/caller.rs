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
}
