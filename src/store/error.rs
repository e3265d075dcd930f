//! What can go wrong in the store layer, with the cause kept as a `source` (never
//! flattened to text) so logs and `imagegate` commands print the whole chain. The HTTP
//! status each variant earns is decided at the HTTP edge (`crate::error`), not here.

use std::time::Duration;

/// Any error a store keeps as its cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached in time (refused, down, pool exhausted, a
    /// connection cut mid-message): the same request may succeed later.
    #[error("the database is unreachable")]
    Unavailable(#[source] sqlx::Error),
    /// The database could not be reached when opening it.
    #[error("cannot connect to {database} at {at}")]
    Connect {
        database: &'static str,
        at: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to {database} at {at}: no answer within {waited:?}")]
    ConnectTimedOut {
        database: &'static str,
        at: String,
        waited: Duration,
    },
    /// A statement failed for a reason of ours (constraint, decode, SQL).
    #[error("database statement failed")]
    Query(#[source] sqlx::Error),
    #[error("migrating the database schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A stored value this version cannot read (or a value it cannot store).
    #[error("malformed {what}")]
    Malformed {
        what: &'static str,
        #[source]
        source: Option<Cause>,
    },
    /// The database lists an image whose bytes the blob store does not have: instances
    /// that share a database but not image storage (docs/operations.md).
    #[error(
        "image {id} is recorded in the database but its bytes are not in {blobs}; instances \
         that share a database must share image storage (object_store_url)"
    )]
    MissingBytes { id: String, blobs: String },
    /// The blob store failed while doing `action`.
    #[error("{action}")]
    Blob {
        action: String,
        #[source]
        source: Cause,
    },
    /// Storage named by the configuration that cannot be used as named.
    #[error("{0}")]
    Config(String),
    /// A command that reads found no database where the configuration points.
    #[error("no imagegate database at {at}; {hint}")]
    NoDatabase { at: String, hint: &'static str },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // Connection-level failures say nothing about the request; everything else
        // (constraint, decode, SQL) is a fault of ours.
        let unavailable = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            // A connection cut mid-message reads as a protocol error.
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            // PostgreSQL's connection exceptions (class 08), shutdown and start-up
            // (57P01–57P03) and "too many connections" (53300).
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0") || c == "53300"),
            _ => false,
        };
        if unavailable {
            Self::Unavailable(e)
        } else {
            Self::Query(e)
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(e) => match Self::from(e) {
                down @ Self::Unavailable(_) => down,
                Self::Query(e) => Self::Migrate(sqlx::migrate::MigrateError::Execute(e)),
                other => other,
            },
            other => Self::Migrate(other),
        }
    }
}

impl StoreError {
    pub fn malformed(what: &'static str, source: impl Into<Cause>) -> Self {
        Self::Malformed {
            what,
            source: Some(source.into()),
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Connect { .. } | Self::ConnectTimedOut { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_the_rest_are_ours() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        let e = StoreError::from(sqlx::Error::Protocol("cut".into()));
        assert!(
            std::error::Error::source(&e).is_some(),
            "the cause is kept, not flattened"
        );
    }
}
